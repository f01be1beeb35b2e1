"""Segmentation loss: per-pixel cross-entropy with an ignore label and optional OHEM."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from training.losses.errors import LossError

if TYPE_CHECKING:
    from training.losses.semantic import SemanticLossConfig


def ohem_select(losses: torch.Tensor, keep_fraction: float, threshold: float | None) -> torch.Tensor:
    """The hardest pixel losses: the top ceil(keep_fraction·K) of the K given, or, with a threshold,
    every loss above it when those are more (mmseg-style OHEM with a minimum kept)."""
    k = math.ceil(keep_fraction * losses.numel())
    if threshold is not None:
        k = max(k, int((losses > threshold).sum()))
    if k >= losses.numel():
        return losses
    return torch.topk(losses, k, sorted=False).values


def segmentation_loss(
    logits: torch.Tensor, mask: torch.Tensor, cfg: SemanticLossConfig
) -> dict[str, torch.Tensor]:
    """CE of [N,S,h,w] logits (resized bilinearly to the mask if needed) against [N,H,W] int64 labels.

    Returns "ce" (mean over the kept non-ignored pixels) and "total" (= ce).
    """
    if logits.shape[-2:] != mask.shape[-2:]:
        logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    valid = mask != cfg.ignore_index
    if valid.any() and int(mask[valid].max()) >= logits.shape[1]:
        raise LossError(
            f"a mask label is >= the head's {logits.shape[1]} classes; check seg_class_names and "
            f"that unlabelled pixels are {cfg.ignore_index}"
        )
    pixel = F.cross_entropy(
        logits.float(), mask, ignore_index=cfg.ignore_index, reduction="none"
    )  # [N, H, W]
    kept = ohem_select(pixel[valid], cfg.ohem_keep_fraction, cfg.ohem_loss_threshold)
    ce = kept.mean() if kept.numel() else 0.0 * logits.sum()  # all-ignored batch: zero, graph kept
    return {"ce": ce, "total": ce}
