"""Losses of the three nets: fusion (θ), GAN (θ vs ω_D), semantic detection + segmentation (ω_S)."""

from __future__ import annotations

from training.losses.detection import detection_loss, fcos_targets, giou_loss, sigmoid_focal_loss
from training.losses.errors import LossError
from training.losses.fusion import FusionLossConfig, fusion_loss, mask_for
from training.losses.gan import GanLossConfig, discriminator_loss, generator_loss
from training.losses.saliency import brighter_mask, saliency_mask, saliency_target
from training.losses.segmentation import ohem_select, segmentation_loss
from training.losses.semantic import SemanticLossConfig, semantic_loss
from training.losses.ssim import ssim

__all__ = [
    "FusionLossConfig",
    "GanLossConfig",
    "LossError",
    "SemanticLossConfig",
    "brighter_mask",
    "detection_loss",
    "discriminator_loss",
    "fcos_targets",
    "fusion_loss",
    "generator_loss",
    "giou_loss",
    "mask_for",
    "ohem_select",
    "saliency_mask",
    "saliency_target",
    "segmentation_loss",
    "semantic_loss",
    "sigmoid_focal_loss",
    "ssim",
]
