"""Infrared saliency mask m and the fusion target m·IR + (1−m)·VIS_Y (the authors precompute m).

How m is computed (all on 0..1 images, per image, no learning):
1. contrast: c_ir = relu(IR − G_σb * IR): how much brighter each pixel is than its large-scale
   blurred IR background (σb = `bg_sigma` px). Only positive contrast: hot targets are bright
   in thermal images; cold patches are not targets. c_vis = |VIS_Y − G_σb * VIS_Y|.
2. excess: e = relu(c_ir − c_vis): salient where IR shows structure the visible image lacks
   (a person in the dark), not where the visible image already shows it in detail.
3. normalise: e / max(q, `min_contrast`), q = the image's `quantile` of c_ir, clipped to [0, 1]:
   targets as strong as the image's strongest IR contrast get m = 1; the floor keeps a
   featureless IR image from having its noise stretched to m = 1.
4. smooth: Gaussian σ = `smooth_sigma` px, so m has soft edges (no halo seams in the target).
Bright thermal targets on a dark/flat visible background → m ≈ 1; flat or visible-textured
regions → m ≈ 0 (the target follows the visible image there).

`brighter_mask` is the alternative the config can choose (fusion_loss.saliency_mode=brighter):
m = sigmoid((IR − VIS_Y) / τ), smoothed: the target follows whichever source is brighter, a soft
form of the max(IR, VIS) intensity target of SeAFusion/PIAFusion. It keeps more of the IR's
overall contrast (higher SD/EN on night scenes), where the contrast mask keeps only targets.
"""

from __future__ import annotations

import torch

from training.losses.filters import gaussian_blur


@torch.no_grad()
def saliency_mask(
    ir: torch.Tensor,
    vis_y: torch.Tensor,
    *,
    bg_sigma: float = 24.0,
    smooth_sigma: float = 2.0,
    quantile: float = 0.99,
    min_contrast: float = 0.05,
) -> torch.Tensor:
    """[N,1,H,W] IR and visible luminance (0..1) -> mask m [N,1,H,W] in [0, 1] (no gradient)."""
    ir, vis_y = ir.float(), vis_y.float()
    c_ir = torch.relu(ir - gaussian_blur(ir, bg_sigma))
    c_vis = (vis_y - gaussian_blur(vis_y, bg_sigma)).abs()
    scale = torch.quantile(c_ir.flatten(1), quantile, dim=1).clamp_min(min_contrast)  # [N]
    m = (torch.relu(c_ir - c_vis) / scale.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    return gaussian_blur(m, smooth_sigma).clamp(0.0, 1.0)


def saliency_target(ir: torch.Tensor, vis_y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """m·IR + (1−m)·VIS_Y: the intensity target of the fusion loss and the GAN's real image."""
    return m * ir + (1.0 - m) * vis_y


@torch.no_grad()
def brighter_mask(
    ir: torch.Tensor, vis_y: torch.Tensor, *, temperature: float = 0.02, smooth_sigma: float = 2.0
) -> torch.Tensor:
    """[N,1,H,W] IR and visible luminance (0..1) -> m = smoothed sigmoid((IR − VIS_Y) / τ) in [0, 1]."""
    m = torch.sigmoid((ir.float() - vis_y.float()) / temperature)
    return gaussian_blur(m, smooth_sigma).clamp(0.0, 1.0)
