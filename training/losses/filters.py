"""Fixed image filters shared by the losses: separable Gaussian blur and Sobel gradient magnitude.

Hand-written (both are a few convs), not torchvision's gaussian_blur: no torchvision wheel matches
the pinned CPU torch of training/pyproject.toml. They always run in float32, also inside an autocast
region: autocast would run their convs in bfloat16 (8 significant bits), and the losses subtract
their outputs (SSIM's variances E[x²] − E[x]², Sobel differences of neighbours), which then lose all
precision. Under bf16 autocast that made SSIM's denominator reach 0 and collapsed the fusion
network (issue 8).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec

import torch
import torch.nn.functional as F

_P = ParamSpec("_P")


def _float32(
    fn: Callable[Concatenate[torch.Tensor, _P], torch.Tensor],
) -> Callable[Concatenate[torch.Tensor, _P], torch.Tensor]:
    """Run `fn(x, ...)` with autocast off on x's device and x (and tensor arguments) in float32."""

    @functools.wraps(fn)
    def wrapper(x: torch.Tensor, *args: _P.args, **kwargs: _P.kwargs) -> torch.Tensor:
        cast = [a.float() if isinstance(a, torch.Tensor) else a for a in args]
        with torch.autocast(x.device.type, enabled=False):
            return fn(x.float(), *cast, **kwargs)  # type: ignore[arg-type]

    return wrapper


def gaussian_kernel1d(sigma: float, radius: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D Gaussian of length 2·radius+1."""
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


@_float32
def separable_conv(x: torch.Tensor, k: torch.Tensor, *, pad: bool) -> torch.Tensor:
    """Convolve every channel of [N,C,H,W] with k ⊗ k; `pad` keeps the size (replicate border). float32."""
    c, r = x.shape[1], k.numel() // 2
    if pad:
        x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Same-size Gaussian blur (radius 3σ, replicate border, so any image size works)."""
    k = gaussian_kernel1d(sigma, max(1, round(3 * sigma)), x.device, torch.float32)
    return separable_conv(x, k, pad=True)


@_float32
def sobel_magnitude(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """√(gx² + gy² + eps) of a [N,1,H,W] image, float32; eps keeps the gradient finite on flat regions."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    k = torch.stack([kx, kx.t()]).unsqueeze(1)  # [2, 1, 3, 3]: d/dx, d/dy
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)
    return torch.sqrt(g.pow(2).sum(dim=1, keepdim=True) + eps)
