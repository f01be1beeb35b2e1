"""BGR <-> YCrCb (full-range BT.601), the same arithmetic as cv2.COLOR_BGR2YCrCb on float images.

Written with slicing and elementwise ops (no matmul over channels) so it is differentiable, exports
to plain ONNX Mul/Add/Concat and runs anywhere. Images are float in 0..1, so OpenCV's chroma
offset ``delta`` is 0.5.
"""

from __future__ import annotations

import torch

_DELTA = 0.5  # chroma offset of OpenCV's float YCrCb


def bgr_to_ycrcb(x: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] BGR 0..1 -> [N,3,H,W] (Y, Cr, Cb) 0..1."""
    b, g, r = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + _DELTA
    cb = (b - y) * 0.564 + _DELTA
    return torch.cat([y, cr, cb], dim=1)


def ycrcb_to_bgr(x: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] (Y, Cr, Cb) -> [N,3,H,W] BGR (not clamped; callers clamp where they need to)."""
    y, cr, cb = x[:, 0:1], x[:, 1:2] - _DELTA, x[:, 2:3] - _DELTA
    r = y + 1.403 * cr
    g = y - 0.714 * cr - 0.344 * cb
    b = y + 1.773 * cb
    return torch.cat([b, g, r], dim=1)
