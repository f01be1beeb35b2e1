"""FCOS-style anchor-free detection loss: targets, sigmoid focal loss, GIoU and centerness.

Hand-written focal and GIoU losses, not torchvision.ops': no torchvision wheel matches the pinned
CPU torch of training/pyproject.toml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from training.losses.errors import LossError
from training.models.points import make_points

if TYPE_CHECKING:
    from training.losses.semantic import SemanticLossConfig


def fcos_targets(
    points: list[torch.Tensor],
    strides: list[int],
    scale_ranges: list[list[float]],
    boxes: torch.Tensor,
    labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point targets of one image: (labels [P] int64, −1 = negative; ltrb [P,4] in stride units).

    A point (make_points order, levels concatenated) is positive for a box when it lies strictly
    inside it and max(l, t, r, b) in pixels is in its level's (lo, hi]; of several such boxes the
    smallest (area) wins. ltrb of negatives is 0.
    """
    if len(scale_ranges) != len(strides):
        raise LossError(
            f"semantic_loss.scale_ranges has {len(scale_ranges)} levels, the net has {len(strides)}"
        )
    pts = torch.cat(points)  # [P, 2]
    per_level = [torch.full((len(p), 1), 1.0, device=pts.device) for p in points]
    stride = torch.cat([v * s for v, s in zip(per_level, strides, strict=True)])  # [P, 1]
    lo = torch.cat([v * r[0] for v, r in zip(per_level, scale_ranges, strict=True)])
    hi = torch.cat([v * r[1] for v, r in zip(per_level, scale_ranges, strict=True)])
    if boxes.numel() == 0:
        return torch.full((len(pts),), -1, dtype=torch.long, device=pts.device), torch.zeros(len(pts), 4)
    x, y = pts[:, :1], pts[:, 1:]  # [P, 1]
    ltrb = torch.stack(
        [x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], dim=2
    )  # [P, M, 4]
    extent = ltrb.max(dim=2).values
    ok = (ltrb.min(dim=2).values > 0) & (extent > lo) & (extent <= hi)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # [M]
    best_area, best = torch.where(ok, area, torch.inf).min(dim=1)
    positive = torch.isfinite(best_area)
    target_labels = torch.where(positive, labels[best], -1)
    target_ltrb = ltrb[torch.arange(len(pts), device=pts.device), best] / stride
    return target_labels, target_ltrb * positive.unsqueeze(1)


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Elementwise focal loss (Lin et al. 2017) of logits against 0/1 targets."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * ce * (1 - p_t) ** gamma


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − GIoU of [K,4] x1,y1,x2,y2 boxes, per pair ([K]); 0 for identical boxes."""
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    lt, rb = torch.maximum(pred[:, :2], target[:, :2]), torch.minimum(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = area_p + area_t - inter
    enclose = (torch.maximum(pred[:, 2:], target[:, 2:]) - torch.minimum(pred[:, :2], target[:, :2])).prod(
        dim=1
    )
    eps = 1e-7
    giou = inter / (union + eps) - (enclose - union) / (enclose + eps)
    return 1 - giou


def _ltrb_to_box(ltrb: torch.Tensor) -> torch.Tensor:
    """Distances from a common point -> a box around that point (the point is the origin)."""
    return torch.cat([-ltrb[:, :2], ltrb[:, 2:]], dim=1)


def _levels(maps: list[torch.Tensor]) -> torch.Tensor:
    """list of [N,C,h,w] -> [N, Σ h·w, C] in make_points order."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)


def detection_loss(
    out: dict[str, Any],
    boxes: list[torch.Tensor],
    labels: list[torch.Tensor],
    strides: list[int],
    cfg: SemanticLossConfig,
) -> dict[str, torch.Tensor]:
    """FCOS loss: "cls" focal (sum / #positives), "box" GIoU and "ctr" BCE (means over positives),
    weighted, and "total". Images without boxes contribute only negatives."""
    cls_maps, reg_maps, ctr_maps = out["cls"], out["reg"], out["ctr"]
    num_classes = cls_maps[0].shape[1]
    points = make_points([(m.shape[-2], m.shape[-1]) for m in cls_maps], strides, cls_maps[0].device)
    targets = [
        fcos_targets(points, strides, cfg.scale_ranges, b, lab) for b, lab in zip(boxes, labels, strict=True)
    ]
    t_labels = torch.stack([t[0] for t in targets])  # [N, P]
    t_ltrb = torch.stack([t[1] for t in targets]).to(cls_maps[0].device)  # [N, P, 4]
    if int(t_labels.max()) >= num_classes:
        raise LossError(f"a box label is >= the head's {num_classes} classes; check class_names and the data")
    cls, reg, ctr = _levels(cls_maps).float(), _levels(reg_maps).float(), _levels(ctr_maps).float().squeeze(2)
    pos = t_labels >= 0
    num_pos = pos.sum().clamp_min(1)  # a tensor: no wait for the device
    onehot = torch.zeros_like(cls)
    onehot[pos, t_labels[pos]] = 1.0
    cls_loss = sigmoid_focal_loss(cls, onehot, cfg.focal_alpha, cfg.focal_gamma).sum() / num_pos
    if pos.any():
        target = t_ltrb[pos]
        box_loss = giou_loss(_ltrb_to_box(reg[pos]), _ltrb_to_box(target)).mean()
        lr, tb = target[:, 0::2], target[:, 1::2]
        ctr_target = torch.sqrt(
            (lr.min(dim=1).values / lr.max(dim=1).values) * (tb.min(dim=1).values / tb.max(dim=1).values)
        )
        ctr_loss = F.binary_cross_entropy_with_logits(ctr[pos], ctr_target)
    else:  # zero terms that stay in the graph, so every head parameter still gets a (zero) grad
        box_loss = ctr_loss = 0.0 * (reg.sum() + ctr.sum())
    terms = {"cls": cfg.w_cls * cls_loss, "box": cfg.w_box * box_loss, "ctr": cfg.w_ctr * ctr_loss}
    return {**terms, "total": terms["cls"] + terms["box"] + terms["ctr"]}
