"""Detection decoding: per-level head outputs -> padded, score-sorted, class-wise-NMS'd detections.

The same code runs in eager PyTorch and in the exported graph: NMS is an autograd Function whose
eager ``forward`` reproduces ONNX ``NonMaxSuppression`` (ONNX Runtime's semantics: keep score >
threshold, suppress IoU > threshold, output per image in descending score) and whose ``symbolic``
emits that op, so torch and ONNX Runtime give the same detections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from training.models.points import make_points


def _box_iou(boxes: torch.Tensor) -> torch.Tensor:
    """[M,4] x1,y1,x2,y2 -> [M,M] IoU."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    return inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-9)


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX NonMaxSuppression with one class: boxes [N,M,4], scores [N,1,M] -> selected [S,3] int64.

    Rows of the output are (image, 0, box index), grouped by image, descending score within one.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        max_per_image: int,
        iou_threshold: float,
        score_threshold: float,
    ) -> torch.Tensor:
        selected = []
        for n in range(boxes.shape[0]):
            s = scores[n, 0]
            order = torch.nonzero(s > score_threshold).squeeze(1)
            order = order[torch.argsort(s[order], descending=True, stable=True)]
            # Greedy loop over a precomputed overlap matrix (python-level, at most pre-NMS top-k
            # iterations) that mirrors ONNX exactly; torchvision's batched NMS is not used because
            # no torchvision wheel matches the pinned CPU torch.
            overlap = (_box_iou(boxes[n, order]) > iou_threshold).cpu().numpy()
            suppressed = np.zeros(len(order), dtype=bool)
            keep: list[int] = []
            for i in range(len(order)):
                if suppressed[i]:
                    continue
                keep.append(i)
                if len(keep) == max_per_image:
                    break
                suppressed |= overlap[i]
            idx = order[torch.tensor(keep, dtype=torch.int64, device=order.device)]
            rows = torch.stack([torch.full_like(idx, n), torch.zeros_like(idx), idx], dim=1)
            selected.append(rows)
        return torch.cat(selected).to(torch.int64) if selected else boxes.new_zeros((0, 3), dtype=torch.int64)

    @staticmethod
    def symbolic(
        g: Any,  # torch.onnx's GraphContext (private module)
        boxes: torch.Value,
        scores: torch.Value,
        max_per_image: int,
        iou_threshold: float,
        score_threshold: float,
    ) -> torch.Value:
        # center_point_box=0 means corner pairs; IoU does not care whether they are (x, y) or (y, x).
        return g.op(
            "NonMaxSuppression",
            boxes,
            scores,
            g.op("Constant", value_t=torch.tensor([max_per_image], dtype=torch.int64)),
            g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32)),
            g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float32)),
        )


def flatten_levels(
    out: Mapping[str, Sequence[torch.Tensor] | torch.Tensor], strides: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Head outputs per level -> (boxes [N,P,4] px, cls logits [N,P,C], ctr logits [N,P]) over all levels."""
    boxes, cls, ctr = [], [], []
    sizes = [(c.shape[2], c.shape[3]) for c in out["cls"]]  # no int(): keeps H, W dynamic in export
    points = make_points(sizes, list(strides), device=out["cls"][0].device)
    for c, r, t, p, s in zip(out["cls"], out["reg"], out["ctr"], points, strides, strict=True):
        ltrb = r.flatten(2).transpose(1, 2) * s  # [N, h*w, 4] pixels
        boxes.append(torch.cat([p - ltrb[..., :2], p + ltrb[..., 2:]], dim=2))
        cls.append(c.flatten(2).transpose(1, 2))  # [N, h*w, C]
        ctr.append(t.flatten(1))  # [N, h*w]
    return torch.cat(boxes, 1), torch.cat(cls, 1), torch.cat(ctr, 1)


def decode_detections(
    out: Mapping[str, Sequence[torch.Tensor] | torch.Tensor],
    strides: Sequence[int],
    *,
    score_threshold: float,
    nms_iou_threshold: float,
    max_detections: int,
    pre_nms_top_k: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode the semantic net's detection outputs.

    Score = sqrt(sigmoid(cls) · sigmoid(ctr)) per (cell, class); the ``pre_nms_top_k`` best pairs
    per image go through class-wise NMS (boxes offset per class so classes never overlap).

    Returns:
        boxes [N,K,4] float px, scores [N,K] descending, classes [N,K] int64, num [N] int64;
        K = max_detections, rows >= num are zero.
    """
    # float32 whatever the heads' dtype: under autocast they give bfloat16/float16, too coarse for
    # pixel coordinates (8 significant bits) and a mixed-dtype scatter below.
    boxes, cls, ctr = (t.float() for t in flatten_levels(out, strides))
    num_classes = cls.shape[2]
    scores = torch.sqrt(torch.sigmoid(cls) * torch.sigmoid(ctr)[..., None]).flatten(1)  # [N, P*C]
    # Pad with -1 so top-k with a fixed k works at any input size (padding never passes the
    # threshold); a fixed k keeps the exported graph free of shape-dependent branches.
    k = max(pre_nms_top_k, max_detections)
    scores = torch.cat([scores, torch.full_like(scores[:, :1], -1.0).expand(-1, k)], dim=1)
    top_scores, top_idx = scores.topk(k, dim=1)  # [N, k]
    box_idx = (top_idx // num_classes).clamp(max=boxes.shape[1] - 1)
    top_cls = top_idx % num_classes
    top_boxes = boxes.gather(1, box_idx[..., None].expand(-1, -1, 4))  # [N, k, 4]
    # Class-wise NMS in one call: shift each class by more than the coordinate span (boxes may
    # start at negative x/y), so boxes of different classes never overlap.
    span = top_boxes.max() - top_boxes.min() + 1.0
    offset = top_cls[..., None].to(boxes.dtype) * span
    sel = _NonMaxSuppression.apply(
        top_boxes + offset, top_scores[:, None], max_detections, nms_iou_threshold, score_threshold
    )  # [S, 3], S <= N*K
    img, j = sel[:, 0], sel[:, 2]
    # Rank of each selection within its image: selections are grouped by image in score order.
    images = torch.arange(top_scores.shape[0], device=sel.device)
    num = (img[None, :] == images[:, None]).sum(1)  # [N]
    starts = num.cumsum(0) - num
    rank = torch.arange(sel.shape[0], device=sel.device) - starts[img]
    src = img * k + j  # into the flattened [N*k] candidates
    dst = img * max_detections + rank  # into the flattened [N*K] outputs
    zeros = torch.zeros_like(top_scores[:, :max_detections]).flatten()  # [N*K]
    out_scores = zeros.scatter(0, dst, top_scores.flatten()[src])
    out_classes = zeros.to(torch.int64).scatter(0, dst, top_cls.flatten()[src])
    dst4 = dst[:, None].expand(-1, 4)
    out_boxes = zeros[:, None].expand(-1, 4).scatter(0, dst4, top_boxes.flatten(0, 1)[src])
    n = top_scores.shape[0]
    return (
        out_boxes.reshape(n, max_detections, 4),
        out_scores.reshape(n, max_detections),
        out_classes.reshape(n, max_detections),
        num.to(torch.int64),
    )
