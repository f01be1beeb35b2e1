"""Infrared-to-visible registration by a fixed homography (cameras rigidly mounted)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fusion_node.pipeline.errors import RegistrationError


class Registration:
    """Maps IR images into the visible image's pixel grid.

    Args:
        homography: 3×3 matrix (or its 9 values row by row, as a ROS double-array parameter)
            mapping IR pixel coordinates to visible pixel coordinates; None or empty = the
            cameras are already registered (same size, same pixels).
    """

    def __init__(self, homography: np.ndarray | Sequence[float] | None = None) -> None:
        self.homography: np.ndarray | None = None
        if homography is None or np.size(homography) == 0:
            return
        matrix = np.asarray(homography, dtype=np.float64)
        if matrix.size != 9:
            raise RegistrationError(
                f"homography has {matrix.size} values, expected 9 (a 3×3 matrix row by row)"
            )
        matrix = matrix.reshape(3, 3)
        if not np.isfinite(matrix).all():
            raise RegistrationError(f"homography has NaN/Inf entries: {matrix.tolist()}; recalibrate")
        if abs(np.linalg.det(matrix)) < 1e-12:
            raise RegistrationError(
                f"homography {matrix.tolist()} is singular (not invertible); recalibrate the cameras"
            )
        self.homography = matrix

    def warp_ir(self, ir: np.ndarray, visible_shape: tuple[int, ...]) -> np.ndarray:
        """Return `ir` in the visible geometry (visible_shape[:2] = height, width)."""
        height, width = int(visible_shape[0]), int(visible_shape[1])
        if self.homography is None:
            if ir.shape[:2] != (height, width):
                raise RegistrationError(
                    f"IR image is {ir.shape[1]}×{ir.shape[0]} but visible is {width}×{height} and no "
                    "homography is set; set the homography parameter (IR -> visible pixels) or "
                    "pre-register the cameras"
                )
            return ir
        return cv2.warpPerspective(
            ir, self.homography, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
