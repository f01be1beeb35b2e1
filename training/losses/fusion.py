"""Fusion loss (the upper level's primary goal): intensity, gradient and SSIM terms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.losses.errors import LossError
from training.losses.filters import sobel_magnitude
from training.losses.saliency import brighter_mask, saliency_mask, saliency_target
from training.losses.ssim import ssim
from training.models.fusion import contrast_sum

SALIENCY_MODES = ("contrast", "brighter", "max")
INTENSITY_TARGETS = ("saliency", "sum")


@dataclass
class FusionLossConfig:
    """Weights of the fusion loss terms and the saliency-mask settings (YAML section ``fusion_loss``).

    Attributes:
        w_intensity: L1 to the intensity target.
        intensity_target: "saliency", m·IR + (1−m)·VIS_Y with the saliency mask m; or "sum",
            `contrast_sum` clipped to 0..1 (the mean level plus both sources' contrasts, the
            additive output's start; fusion_net.output).
        w_gradient: L1 between |∇fused| and gradient_gain·max(|∇IR|, |∇VIS_Y|) (Sobel magnitudes).
        gradient_gain: > 1 asks for edges sharper than either source's (SF/AG rise; 1 = SeAFusion's).
        gradient_balance: each source's Sobel magnitude is first scaled to the same per-image mean
            (that of the source with the stronger edges), so the target keeps the weaker source's
            texture too: RoadScene's IR has the stronger edge on 74 % of the pixels, TNO's visible
            image on 59 %, and the plain max teaches "copy the IR's edges" (docs/benchmarks.md).
        w_ssim: weight of the SSIM term.
        ssim_ir_share: the SSIM term is share·(1−SSIM(f, IR)) + (1−share)·(1−SSIM(f, VIS_Y)).
        saliency_mode: "contrast" (IR targets the visible image lacks), "brighter" (the
            brighter source per pixel, soft) or "max" (max(IR, VIS_Y) exactly, SeAFusion's
            intensity target); saliency_*: see training/losses/saliency.py.
    """

    w_intensity: float = 1.0
    intensity_target: str = "saliency"
    w_gradient: float = 1.0
    w_ssim: float = 1.0
    gradient_gain: float = 1.0
    gradient_balance: bool = False
    ssim_ir_share: float = 0.5
    saliency_mode: str = "contrast"
    saliency_temperature: float = 0.02
    saliency_bg_sigma: float = 24.0
    saliency_smooth_sigma: float = 2.0
    saliency_quantile: float = 0.99
    saliency_min_contrast: float = 0.05

    def __post_init__(self) -> None:
        if min(self.w_intensity, self.w_gradient, self.w_ssim, self.gradient_gain) < 0:
            raise LossError(f"fusion_loss weights and gradient_gain must be >= 0, got {self}")
        if not 0.0 <= self.ssim_ir_share <= 1.0:
            raise LossError(f"fusion_loss.ssim_ir_share must be in [0, 1], got {self.ssim_ir_share}")
        if self.saliency_mode not in SALIENCY_MODES:
            raise LossError(
                f"fusion_loss.saliency_mode must be one of {SALIENCY_MODES}, got {self.saliency_mode!r}"
            )
        if self.intensity_target not in INTENSITY_TARGETS:
            raise LossError(
                f"fusion_loss.intensity_target must be one of {INTENSITY_TARGETS}, "
                f"got {self.intensity_target!r}"
            )
        if not 0.0 < self.saliency_quantile <= 1.0:
            raise LossError(f"fusion_loss.saliency_quantile must be in (0, 1], got {self.saliency_quantile}")


def mask_for(ir: torch.Tensor, vis_y: torch.Tensor, cfg: FusionLossConfig) -> torch.Tensor:
    """The saliency mask with this config's settings."""
    if cfg.saliency_mode == "max":  # target m·IR + (1−m)·VIS_Y = max(IR, VIS_Y)
        return (ir > vis_y).to(ir.dtype)
    if cfg.saliency_mode == "brighter":
        return brighter_mask(
            ir, vis_y, temperature=cfg.saliency_temperature, smooth_sigma=cfg.saliency_smooth_sigma
        )
    return saliency_mask(
        ir,
        vis_y,
        bg_sigma=cfg.saliency_bg_sigma,
        smooth_sigma=cfg.saliency_smooth_sigma,
        quantile=cfg.saliency_quantile,
        min_contrast=cfg.saliency_min_contrast,
    )


def intensity_target(
    ir: torch.Tensor, vis_y: torch.Tensor, m: torch.Tensor, cfg: FusionLossConfig
) -> torch.Tensor:
    """The intensity term's target [N,1,H,W]: see FusionLossConfig.intensity_target."""
    if cfg.intensity_target == "sum":
        means = ir.mean(dim=(2, 3), keepdim=True), vis_y.mean(dim=(2, 3), keepdim=True)
        return contrast_sum(ir, vis_y, *means).clamp(0.0, 1.0)
    return saliency_target(ir, vis_y, m)


def gradient_target(ir: torch.Tensor, vis_y: torch.Tensor, *, balance: bool) -> torch.Tensor:
    """max(|∇IR|, |∇VIS_Y|) per pixel; with `balance`, each magnitude first rescaled so its image's
    mean equals the larger of the two images' means (per sample)."""
    g_ir, g_vis = sobel_magnitude(ir), sobel_magnitude(vis_y)
    if balance:
        mean_ir, mean_vis = g_ir.mean(dim=(1, 2, 3), keepdim=True), g_vis.mean(dim=(1, 2, 3), keepdim=True)
        scale = torch.maximum(mean_ir, mean_vis)
        g_ir, g_vis = g_ir * (scale / mean_ir), g_vis * (scale / mean_vis)
    return torch.maximum(g_ir, g_vis)


def fusion_loss(
    fused_y: torch.Tensor,
    ir: torch.Tensor,
    vis_y: torch.Tensor,
    cfg: FusionLossConfig,
    *,
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Named fusion loss terms (weighted) and their sum "total"; all inputs [N,1,H,W] in 0..1.

    `mask` is the saliency mask if the caller already has it (computed from ir/vis_y otherwise).
    """
    if fused_y.shape != ir.shape or ir.shape != vis_y.shape or ir.shape[1] != 1:
        raise LossError(
            f"fusion_loss needs fused_y, ir, vis_y all [N,1,H,W] alike, got "
            f"{tuple(fused_y.shape)}, {tuple(ir.shape)}, {tuple(vis_y.shape)}"
        )
    fused_y = fused_y.float()
    m = mask_for(ir, vis_y, cfg) if mask is None else mask
    intensity = F.l1_loss(fused_y, intensity_target(ir, vis_y, m, cfg))
    grad_target = cfg.gradient_gain * gradient_target(ir, vis_y, balance=cfg.gradient_balance)
    gradient = F.l1_loss(sobel_magnitude(fused_y), grad_target)
    share = cfg.ssim_ir_share
    ssim_term = share * (1.0 - ssim(fused_y, ir)) + (1.0 - share) * (1.0 - ssim(fused_y, vis_y))
    terms = {
        "intensity": cfg.w_intensity * intensity,
        "gradient": cfg.w_gradient * gradient,
        "ssim": cfg.w_ssim * ssim_term,
    }
    return {**terms, "total": terms["intensity"] + terms["gradient"] + terms["ssim"]}
