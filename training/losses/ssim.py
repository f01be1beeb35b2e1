"""Differentiable SSIM (Wang et al. 2004): 11×11 Gaussian window σ=1.5, K1=0.01, K2=0.03."""

from __future__ import annotations

import torch

from training.losses.filters import gaussian_kernel1d, separable_conv


def ssim(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Mean SSIM of [N,C,H,W] images over all valid (unpadded) window positions; a 0-d tensor.

    Statistics are computed in float32 whatever the input dtype (variances are differences of
    small numbers and lose all precision in bfloat16).
    """
    x, y = x.float(), y.float()
    k = gaussian_kernel1d(sigma, window // 2, x.device, x.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = separable_conv(x, k, pad=False), separable_conv(y, k, pad=False)
    var_x = separable_conv(x * x, k, pad=False) - mu_x**2
    var_y = separable_conv(y * y, k, pad=False) - mu_y**2
    cov = separable_conv(x * y, k, pad=False) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean()
