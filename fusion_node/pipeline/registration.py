"""Infrared-to-visible registration, fixed for rigidly mounted cameras.

A homography (hand-entered, or from the calibration when no camera is distorted) or a remap table
(from a distorted calibration, see calibration.py); `source` says where it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np

from fusion_node.pipeline.errors import RegistrationError

Maps = tuple[np.ndarray, np.ndarray]


class Registration:
    """Maps IR images into the visible image's pixel grid.

    Args:
        homography: 3×3 matrix (or its 9 values row by row, as a ROS double-array parameter)
            mapping IR pixel coordinates to visible pixel coordinates; None or empty (and no
            `maps`) = the cameras are already registered (same size, same pixels).
        maps: (map_x, map_y) float32 tables of visible size: the IR pixel seen at each visible
            pixel (cv2.remap), instead of a homography; or a function that computes them at first
            use, so that the worker thread, not a ROS callback, pays for it (seconds for 1080p).
        source: where the registration comes from, for the log and /diagnostics (None: the
            homography parameter, or none).
        expected_hw: {"ir": (h, w), "visible": (h, w)}: the image sizes a calibration is for;
            other sizes are refused (empty = any size).
    """

    def __init__(
        self,
        homography: np.ndarray | Sequence[float] | None = None,
        *,
        maps: Maps | Callable[[], Maps] | None = None,
        source: str | None = None,
        expected_hw: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.homography: np.ndarray | None = None
        self._maps = maps
        self.expected_hw = dict(expected_hw or {})
        given = homography is not None and np.size(homography) > 0
        default = "homography parameter" if given else "none (cameras registered)"
        self.source = source or default
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

    @property
    def maps(self) -> Maps | None:
        """The remap tables (computed now if they were given as a function), or None."""
        if callable(self._maps):
            self._maps = self._maps()
        return self._maps

    def warp_ir(self, ir: np.ndarray, visible_shape: tuple[int, ...]) -> np.ndarray:
        """Return `ir` in the visible geometry (visible_shape[:2] = height, width)."""
        height, width = int(visible_shape[0]), int(visible_shape[1])
        for camera, hw in (("ir", ir.shape[:2]), ("visible", (height, width))):
            expected = self.expected_hw.get(camera)
            if expected is not None and tuple(hw) != tuple(expected):
                raise RegistrationError(
                    f"{camera} image is {hw[1]}×{hw[0]} but its calibration is for "
                    f"{expected[1]}×{expected[0]} ({self.source}); give that camera's own calibration"
                )
        maps = self.maps
        if maps is not None:
            return cv2.remap(ir, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if self.homography is None:
            if ir.shape[:2] != (height, width):
                raise RegistrationError(
                    f"IR image is {ir.shape[1]}×{ir.shape[0]} but visible is {width}×{height} and no "
                    "homography is set; set the homography parameter (IR -> visible pixels), give the "
                    "cameras' calibration, or pre-register the cameras"
                )
            return ir
        return cv2.warpPerspective(
            ir, self.homography, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )


class PendingRegistration(Registration):
    """No registration yet (calibration messages not received): every pair fails with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(source=f"waiting: {reason}")
        self.reason = reason

    def warp_ir(self, ir: np.ndarray, visible_shape: tuple[int, ...]) -> np.ndarray:
        raise RegistrationError(self.reason)
