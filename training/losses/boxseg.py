"""Box-supervised semantic segmentation losses (BoxInst-style, plus an IR warm-region prior).

No mask labels: each pair gives boxes with SEG_CLASSES ids (ground truth or cached detector
boxes). With p = softmax(logits) over the classes, the terms are (our formulation of BoxInst,
Tian et al., CVPR 2021, for semantic rather than instance masks):

- projection: for each box b of class c, in a window = b grown by ``projection_margin``, the
  max-projections of p_c onto the x and y axes match those of the union of class-c boxes in
  that window (dice, as BoxInst): every row and column of a tight box holds some of the object,
  nothing beside it does. A perfect object mask has ~0 loss; a mask leaking out of its box or
  leaving rows/columns of it empty does not.
- box_label: every pixel's label must be one the boxes allow: background outside all boxes,
  background or a covering box's class inside (-log of the allowed classes' total probability).
  Outside all boxes this is the background cross-entropy.
- affinity: neighbours (3×3, dilated) whose guide values are similar (exp(-‖Δg‖/θ) ≥ τ) should
  share a label: -log Σ_k p_i,k·p_j,k, on pixels inside boxes grown by ``near_margin``. The guide
  is the image in CIE Lab plus the IR intensity on the same 0..100 scale (``lab_ir_guide``), so
  an edge in either source separates labels (the visible image alone is flat at night).
- warm: inside class-c boxes, warm IR pixels (``saliency_mask`` of the IR alone: brighter than
  its blurred surroundings) should be c: Σ w·(-log p_c) / Σ w. A soft prior, weighted low: warm
  says "object" for people and running vehicles, but cold does not say "background" (parked cars).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from training.losses.errors import LossError
from training.losses.saliency import saliency_mask

IR_GUIDE_SCALE = 100.0  # IR 0..1 onto Lab's L range 0..100
LOSS_STRIDE = 2  # the losses run at half the detector input resolution (cheaper, as sharp as stride 4)


@dataclass
class BoxSegLossConfig:
    """Weights and settings of the box-supervised terms (θ, τ, dilation: BoxInst's 2, 0.3, 2)."""

    w_projection: float = 1.0
    w_box_label: float = 1.0
    w_affinity: float = 1.0
    w_warm: float = 0.2
    projection_margin: float = 0.25  # window around a box, as a fraction of its width/height
    near_margin: float = 0.1  # affinity applies inside boxes grown by this fraction
    affinity_dilation: int = 2
    affinity_theta: float = 2.0
    affinity_threshold: float = 0.3
    warm_bg_sigma: float = 12.0
    warm_smooth_sigma: float = 1.0

    def __post_init__(self) -> None:
        weights = (self.w_projection, self.w_box_label, self.w_affinity, self.w_warm)
        if min(weights) < 0 or self.affinity_dilation < 1 or self.affinity_theta <= 0:
            raise LossError(f"box-seg loss weights must be >= 0, dilation >= 1 and theta > 0, got {self}")


def lab_ir_guide(bgr: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] BGR and [N,1,H,W] IR (0..1) → affinity guide [N,4,H,W]: L, a, b (OpenCV) and IR·100.

    Computed on the CPU with OpenCV and detached: the guide is a constant of the loss.
    """
    images = bgr.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    lab = np.stack([cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_BGR2LAB) for im in images])
    lab_t = torch.from_numpy(lab).permute(0, 3, 1, 2).to(bgr.device)
    return torch.cat([lab_t, ir.detach().float() * IR_GUIDE_SCALE], dim=1)


def rasterize(boxes: torch.Tensor, size: tuple[int, int], margin: float = 0.0) -> torch.Tensor:
    """[M,4] x1,y1,x2,y2 pixel boxes (grown by ``margin`` of their size per side) → [M,H,W] bool.

    A pixel belongs to a box when its centre is inside; every box covers at least one pixel.
    """
    height, width = size
    grow = (boxes[:, 2:] - boxes[:, :2]).clamp_min(0) * margin
    lo = (boxes[:, :2] - grow).floor().clamp_min(0)
    hi = torch.maximum((boxes[:, 2:] + grow).ceil(), lo + 1)
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype)
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype)
    in_x = (xs >= lo[:, :1]) & (xs < hi[:, :1])  # [M,W]
    in_y = (ys >= lo[:, 1:]) & (ys < hi[:, 1:])  # [M,H]
    return in_y[:, :, None] & in_x[:, None, :]


def class_regions(
    boxes: torch.Tensor, classes: torch.Tensor, num_classes: int, size: tuple[int, int]
) -> torch.Tensor:
    """[C,H,W] bool: the union of each class's boxes; class 0 (background) is allowed everywhere."""
    one_hot = F.one_hot(classes.long(), num_classes).to(boxes.dtype)  # [M,C]
    regions = torch.einsum("mc,mhw->chw", one_hot, rasterize(boxes, size).to(boxes.dtype)) > 0
    regions[0] = True
    return regions


def _dice(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − 2Σxy / (Σx² + Σy²) over the last dim (BoxInst's dice on projections)."""
    return 1.0 - 2.0 * (x * target).sum(-1) / ((x * x).sum(-1) + (target * target).sum(-1)).clamp_min(1e-5)


def projection_loss(
    probs: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor, regions: torch.Tensor, margin: float
) -> torch.Tensor:
    """One image: [C,H,W] probabilities, [M,4] boxes, [M] classes, [C,H,W] class regions → [M] losses."""
    windows = rasterize(boxes, (probs.shape[-2], probs.shape[-1]), margin)  # [M,H,W]
    pred = probs[classes] * windows
    target = (regions[classes] & windows).to(probs.dtype)
    loss_x = _dice(pred.amax(dim=1), target.amax(dim=1))
    loss_y = _dice(pred.amax(dim=2), target.amax(dim=2))
    return loss_x + loss_y


def box_label_loss(log_probs: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """One image: [C,H,W] log-probabilities, [C,H,W] allowed classes → [H,W] −log P(allowed)."""
    return -torch.logsumexp(log_probs.masked_fill(~regions, -math.inf), dim=0)


def _neighbours(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """[N,K,H,W] → [N,K,8,H,W]: the 8 neighbours of each pixel at ``dilation`` (zero beyond the edge)."""
    n, k, h, w = x.shape
    patches = F.unfold(x, kernel_size=3, dilation=dilation, padding=dilation).view(n, k, 9, h, w)
    return torch.cat([patches[:, :, :4], patches[:, :, 5:]], dim=2)


def similar_edges(guide: torch.Tensor, cfg: BoxSegLossConfig) -> torch.Tensor:
    """[N,K,H,W] guide → [N,8,H,W] bool: the pixel–neighbour edge lies in the image and its guide
    values are similar (exp(−‖Δg‖/θ) ≥ τ). A constant of the loss: compute once per image."""
    d = cfg.affinity_dilation
    guide = guide.detach().float()
    inside = _neighbours(torch.ones_like(guide[:, :1]), d)[:, 0] > 0
    distance = (guide[:, :, None] - _neighbours(guide, d)).norm(dim=1)
    return (torch.exp(-distance / cfg.affinity_theta) >= cfg.affinity_threshold) & inside


def warm_prior(ir: torch.Tensor, cfg: BoxSegLossConfig) -> torch.Tensor:
    """[N,1,H,W] IR 0..1 → [N,H,W] warmth in [0, 1]: ``saliency_mask`` of the IR alone (a zero
    visible image), i.e. how much brighter than its blurred surroundings. A constant of the loss."""
    m = saliency_mask(
        ir, torch.zeros_like(ir), bg_sigma=cfg.warm_bg_sigma, smooth_sigma=cfg.warm_smooth_sigma
    )
    return m[:, 0]


def box_seg_loss(
    logits: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    classes: Sequence[torch.Tensor],
    edges: torch.Tensor,
    warm: torch.Tensor,
    cfg: BoxSegLossConfig,
) -> dict[str, torch.Tensor]:
    """Named terms and their weighted "total" for [N,C,H,W] logits at the boxes' pixel scale.

    Args:
        boxes, classes: per image [M,4] x1,y1,x2,y2 and [M] SEG_CLASSES ids (1..C−1; may be empty).
        edges: [N,8,H,W] from ``similar_edges`` of the guide (``lab_ir_guide``).
        warm: [N,H,W] from ``warm_prior`` of the IR image.
    """
    n, c, h, w = logits.shape
    if not len(boxes) == len(classes) == n or edges.shape[-2:] != (h, w) or warm.shape[-2:] != (h, w):
        raise LossError(
            f"box-seg loss: {n} images of {h}×{w} logits need {n} box/class lists and edges/warmth of "
            f"that size, got {len(boxes)}/{len(classes)} lists, edges {tuple(edges.shape)}, "
            f"warmth {tuple(warm.shape)}"
        )
    log_probs = F.log_softmax(logits.float(), dim=1)
    probs = log_probs.exp()
    pair = log_probs[:, :, None] + _neighbours(log_probs, cfg.affinity_dilation)  # [N,C,8,H,W]
    nll = -torch.logsumexp(pair, dim=1)  # −log P(pixel and neighbour share a label)
    zero = logits.sum() * 0.0  # keeps the graph when a batch has no boxes
    projection, box_label, warm_num, warm_den, aff_num, aff_den = [], [], zero, zero, zero, zero
    for i in range(n):
        b, k = boxes[i].to(logits.device, torch.float32), classes[i].to(logits.device, torch.long)
        if len(k) and (k.min() < 1 or k.max() >= c):
            raise LossError(
                f"box classes must be object classes 1..{c - 1} of the head's {c}, got {k.tolist()}"
            )
        regions = class_regions(b, k, c, (h, w))
        box_label.append(box_label_loss(log_probs[i], regions).mean())
        if not len(k):
            continue
        projection.append(projection_loss(probs[i], b, k, regions, cfg.projection_margin))
        near = rasterize(b, (h, w), cfg.near_margin).any(dim=0)  # [H,W]
        weight = edges[i] & near
        aff_num = aff_num + (nll[i] * weight).sum()
        aff_den = aff_den + weight.sum()
        in_class = regions[1:].to(warm.dtype) * warm[i]  # [C−1,H,W]
        warm_num = warm_num - (in_class * log_probs[i, 1:]).sum()
        warm_den = warm_den + in_class.sum()
    terms = {
        "projection": torch.cat(projection).mean() if projection else zero,
        "box_label": torch.stack(box_label).mean(),
        "affinity": aff_num / aff_den.clamp_min(1.0),
        "warm": warm_num / warm_den.clamp_min(1e-6),
    }
    total = (
        cfg.w_projection * terms["projection"]
        + cfg.w_box_label * terms["box_label"]
        + cfg.w_affinity * terms["affinity"]
        + cfg.w_warm * terms["warm"]
    )
    return {**terms, "total": total}
