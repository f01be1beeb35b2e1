"""Fixed image filters shared by the losses: separable Gaussian blur and Sobel gradient magnitude.

Hand-written (both are a few convs), not torchvision's gaussian_blur: no torchvision wheel matches
the pinned CPU torch of training/pyproject.toml.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, radius: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D Gaussian of length 2·radius+1."""
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def separable_conv(x: torch.Tensor, k: torch.Tensor, *, pad: bool) -> torch.Tensor:
    """Convolve every channel of [N,C,H,W] with k ⊗ k; `pad` keeps the size (replicate border)."""
    c, r = x.shape[1], k.numel() // 2
    if pad:
        x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Same-size Gaussian blur (radius 3σ, replicate border, so any image size works)."""
    k = gaussian_kernel1d(sigma, max(1, round(3 * sigma)), x.device, x.dtype)
    return separable_conv(x, k, pad=True)


def sobel_magnitude(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """√(gx² + gy² + eps) of a [N,1,H,W] image; eps keeps the gradient finite on flat regions."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    k = torch.stack([kx, kx.t()]).unsqueeze(1)  # [2, 1, 3, 3]: d/dx, d/dy
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k)
    return torch.sqrt(g.pow(2).sum(dim=1, keepdim=True) + eps)
