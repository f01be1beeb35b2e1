"""The semantic net's loss: detection (when the batch has boxes) + segmentation (when it has a mask)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from training.losses.detection import detection_loss
from training.losses.errors import LossError
from training.losses.segmentation import segmentation_loss


@dataclass
class SemanticLossConfig:
    """Detection and segmentation loss settings (YAML section ``semantic_loss``).

    Attributes:
        scale_ranges: per FPN level (lo, hi] of max(l, t, r, b) in pixels for a positive point.
        focal_alpha, focal_gamma: sigmoid focal loss of the classification branch.
        w_cls, w_box, w_ctr: detection term weights; w_det, w_seg: weights of the two tasks.
        ignore_index: mask label that is not trained.
        ohem_keep_fraction: fraction of the hardest valid pixels kept (1 = plain CE).
        ohem_loss_threshold: also keep every pixel whose CE is above this (None = off).
        weight: multiplies the semantic loss in the fusion net's upper loss F_S.
    """

    scale_ranges: list[list[float]] = field(
        default_factory=lambda: [[0.0, 64.0], [64.0, 128.0], [128.0, math.inf]]
    )
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    w_cls: float = 1.0
    w_box: float = 1.0
    w_ctr: float = 1.0
    w_det: float = 1.0
    w_seg: float = 1.0
    ignore_index: int = 255
    ohem_keep_fraction: float = 1.0
    ohem_loss_threshold: float | None = None
    weight: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.ohem_keep_fraction <= 1.0:
            raise LossError(
                f"semantic_loss.ohem_keep_fraction must be in (0, 1], got {self.ohem_keep_fraction}"
            )
        if any(len(r) != 2 or r[0] >= r[1] for r in self.scale_ranges):
            raise LossError(
                f"semantic_loss.scale_ranges must be [lo, hi] pairs with lo < hi, got {self.scale_ranges}"
            )


def _infer_strides(out: dict[str, Any], batch: dict[str, Any]) -> list[int]:
    height = batch["visible"].shape[-2]
    strides = [height // m.shape[-2] for m in out["cls"]]
    if any(s * m.shape[-2] != height for s, m in zip(strides, out["cls"], strict=True)):
        raise LossError("semantic_loss cannot infer strides from the input size; pass strides=net.strides")
    return strides


def semantic_loss(
    out: dict[str, Any], batch: dict[str, Any], cfg: SemanticLossConfig, *, strides: list[int] | None = None
) -> dict[str, torch.Tensor]:
    """Named terms ("det_cls", "det_box", "det_ctr", "seg_ce") and "total" = w_det·det + w_seg·seg.

    Detection is trained when batch["boxes"] is not None (a list, possibly with empty images),
    segmentation when batch["mask"] is not None. `strides` default: input height / map height.
    """
    terms: dict[str, torch.Tensor] = {}
    total: torch.Tensor | None = None
    if batch.get("boxes") is not None:
        det = detection_loss(out, batch["boxes"], batch["labels"], strides or _infer_strides(out, batch), cfg)
        terms.update({f"det_{k}": v for k, v in det.items() if k != "total"})
        total = cfg.w_det * det["total"]
    if batch.get("mask") is not None:
        seg = segmentation_loss(out["seg"], batch["mask"], cfg)
        terms["seg_ce"] = seg["ce"]
        total = cfg.w_seg * seg["total"] + (total if total is not None else 0.0)
    if total is None:
        raise LossError("semantic_loss: the batch has neither boxes nor a mask; the semantic task needs one")
    return {**terms, "total": total}
