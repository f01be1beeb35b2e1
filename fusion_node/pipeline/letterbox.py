"""Where the visible image sits in the model's input: stretched to fill it, or letterboxed.

Stretching a 16:9 camera into a 4:3 input distorts shapes the model learnt; letterboxing keeps the
aspect ratio and pads the rest with black. `Placement` maps both ways, so outputs (fused image,
segmentation, boxes) come back in the visible image's own pixels, padding cropped away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Fit = Literal["stretch", "letterbox"]
FITS: tuple[Fit, ...] = ("stretch", "letterbox")


@dataclass(frozen=True)
class Placement:
    """The visible image of `image_hw` drawn into the input of `input_hw` at (x0, y0), size (w, h)."""

    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    x0: int
    y0: int
    w: int
    h: int

    @classmethod
    def of(cls, image_hw: tuple[int, int], input_hw: tuple[int, int], fit: Fit) -> Placement:
        """The placement `fit` gives (FusionPipeline has checked it is one of FITS)."""
        (img_h, img_w), (in_h, in_w) = image_hw, input_hw
        if fit == "stretch":
            return cls(image_hw, input_hw, 0, 0, in_w, in_h)
        scale = min(in_w / img_w, in_h / img_h)
        w, h = min(in_w, max(1, round(img_w * scale))), min(in_h, max(1, round(img_h * scale)))
        return cls(image_hw, input_hw, (in_w - w) // 2, (in_h - h) // 2, w, h)

    def to_input(self, image: np.ndarray) -> np.ndarray:
        """`image` (of image_hw) resized into the content area, padding black."""
        shrink = self.w * self.h < self.image_hw[0] * self.image_hw[1]
        content = _resize(image, (self.h, self.w), cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if (self.h, self.w) == self.input_hw:
            return content
        canvas = np.zeros((*self.input_hw, *image.shape[2:]), image.dtype)
        canvas[self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w] = content
        return canvas

    def from_input(self, image: np.ndarray, interpolation: int) -> np.ndarray:
        """An input-geometry `image` (fused, class ids) cropped to the content, at image_hw."""
        content = image[self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w]
        return _resize(np.ascontiguousarray(content), self.image_hw, interpolation)

    def boxes_from_input(self, boxes: np.ndarray) -> np.ndarray:
        """N×4 (x1, y1, x2, y2) input pixels -> image pixels, clipped to the image."""
        img_h, img_w = self.image_hw
        offset = np.array([self.x0, self.y0, self.x0, self.y0], np.float32)
        scale = np.array([img_w / self.w, img_h / self.h, img_w / self.w, img_h / self.h], np.float32)
        return np.clip((boxes - offset) * scale, 0, np.array([img_w, img_h, img_w, img_h], np.float32))


def _resize(image: np.ndarray, hw: tuple[int, int], interpolation: int) -> np.ndarray:
    if image.shape[:2] == hw:
        return image
    return cv2.resize(image, (hw[1], hw[0]), interpolation=interpolation)
