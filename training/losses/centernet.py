"""CenterNet's training loss (Zhou et al. 2019, "Objects as Points") for the pretrained detector.

Targets are encoded at the detector's output stride (``STRIDE`` = 4) on its own output layout
(training/models/centernet.py): per class a heatmap with a Gaussian peak at each box centre's
stride-4 cell (radius from CenterNet's IoU-0.7 rule), and at that cell the four distances
(left, top, right, bottom) from the cell's input-pixel position (x·4, y·4) to the box edges,
which is what the graph's decode reads back. Loss: CenterNet's penalty-reduced focal loss on the
heatmap (α = 2, β = 4, summed and divided by the number of objects) plus the L1 of the distances
in units of ``WH_SCALE`` pixels (the wh head's own output scale) at the centre cells. This head
predicts distances to the edges rather than a size and an offset, so the one L1 term covers both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from training.losses.errors import LossError
from training.models.centernet import STRIDE, WH_SCALE

_PROB_EPS = 1e-4  # CenterNet clamps the heatmap to [ε, 1 − ε] before the logs


@dataclass
class CenterNetLossConfig:
    """Weights of the heatmap focal and the distance L1 terms, and the Gaussian's IoU rule."""

    w_heatmap: float = 1.0
    w_size: float = 1.0
    min_overlap: float = 0.7
    focal_alpha: float = 2.0
    focal_beta: float = 4.0

    def __post_init__(self) -> None:
        if min(self.w_heatmap, self.w_size) < 0 or not 0 < self.min_overlap < 1:
            raise LossError(f"centernet loss: weights must be >= 0 and min_overlap in (0, 1), got {self}")


def gaussian_radius(height: float, width: float, min_overlap: float) -> float:
    """CenterNet's radius: the largest corner shift keeping IoU ≥ ``min_overlap`` (of its three cases)."""
    b1, c1 = height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2, c2 = 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def centernet_targets(
    boxes: torch.Tensor, labels: torch.Tensor, num_classes: int, size: tuple[int, int], min_overlap: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's targets on the h×w output grid (``size``).

    Args:
        boxes: [M,4] x1,y1,x2,y2 in detector-input pixels (h·STRIDE × w·STRIDE); labels: [M] class ids.

    Returns:
        heatmap [C,h,w] (1 at each centre cell), centres [M,2] (x, y cells, int64),
        distances [M,4] (l, t, r, b input pixels from (x·STRIDE, y·STRIDE)).
    """
    h, w = size
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise LossError(f"box labels {labels.tolist()} outside the detector's {num_classes} classes")
    boxes = boxes.float()
    heatmap = torch.zeros(num_classes, h, w, device=boxes.device)
    centre = ((boxes[:, :2] + boxes[:, 2:]) / (2 * STRIDE)).floor().long()
    centre[:, 0].clamp_(0, w - 1)
    centre[:, 1].clamp_(0, h - 1)
    ys, xs = torch.arange(h, device=boxes.device), torch.arange(w, device=boxes.device)
    for (x1, y1, x2, y2), (cx, cy), label in zip(
        boxes.tolist(), centre.tolist(), labels.tolist(), strict=True
    ):
        radius = max(0, int(gaussian_radius((y2 - y1) / STRIDE, (x2 - x1) / STRIDE, min_overlap)))
        sigma = (2 * radius + 1) / 6
        dy, dx = (ys - cy).float(), (xs - cx).float()
        blob = torch.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2 * sigma**2))
        blob = blob * ((dy.abs() <= radius)[:, None] & (dx.abs() <= radius)[None, :])
        heatmap[label] = torch.maximum(heatmap[label], blob)
    origin = (centre * STRIDE).float()
    distances = torch.cat([origin - boxes[:, :2], boxes[:, 2:] - origin], dim=1)
    return heatmap, centre, distances


def centernet_loss(
    keypoints: torch.Tensor,
    wh: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    cfg: CenterNetLossConfig,
) -> dict[str, torch.Tensor]:
    """ "heatmap", "size" (weighted) and "total" for the detector's outputs on a batch.

    keypoints [N,C,h,w] (sigmoid) and wh [N,4,h,w] (input pixels) as ``CenterNet.detect`` returns
    them; boxes/labels per image in detector-input pixels and class ids. Images without boxes add
    only negatives.
    """
    n, c, h, w = keypoints.shape
    if len(boxes) != n or len(labels) != n:
        raise LossError(
            f"centernet loss: {n} images need {n} box/label lists, got {len(boxes)}/{len(labels)}"
        )
    prob = keypoints.float().clamp(_PROB_EPS, 1 - _PROB_EPS)
    focal = prob.new_zeros(())
    size_terms, num_objects = [], 0
    for i in range(n):
        heatmap, centre, distances = centernet_targets(boxes[i], labels[i], c, (h, w), cfg.min_overlap)
        heatmap = heatmap.to(prob.device)
        p, positive = prob[i], heatmap == 1
        pos = -((1 - p) ** cfg.focal_alpha * torch.log(p))[positive].sum()
        neg = -((1 - heatmap) ** cfg.focal_beta * p**cfg.focal_alpha * torch.log(1 - p))[~positive].sum()
        focal = focal + pos + neg
        num_objects += len(labels[i])
        if len(labels[i]):
            predicted = wh[i, :, centre[:, 1], centre[:, 0]].T.float()  # [M,4]
            size_terms.append((predicted - distances.to(predicted.device)).abs().sum(1) / WH_SCALE)
    size = torch.cat(size_terms).mean() if size_terms else wh.sum() * 0.0
    terms = {"heatmap": cfg.w_heatmap * focal / max(num_objects, 1), "size": cfg.w_size * size}
    return {**terms, "total": terms["heatmap"] + terms["size"]}
