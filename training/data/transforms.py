"""Joint geometric augmentation (IR, visible, mask, boxes together) and visible-only photometric jitter.

Every random draw comes from the `numpy.random.Generator` passed in, so a seed reproduces a sample.
The deterministic steps (`resize`, `crop`, `hflip`) are public so tests can check them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.data.errors import DataError
from training.data.sample import Pair

IGNORE = 255  # mask value of padding and of pixels without a label


def resize(pair: Pair, size: tuple[int, int]) -> Pair:
    """Resize to (height, width): images bilinear, mask nearest-neighbour, boxes scaled per axis."""
    height, width = size
    h0, w0 = pair.size
    if (h0, w0) == (height, width):
        return pair
    scale = np.array([width / w0, height / h0, width / w0, height / h0], np.float32)
    return pair.with_(
        ir=cv2.resize(pair.ir, (width, height), interpolation=cv2.INTER_LINEAR),
        visible=cv2.resize(pair.visible, (width, height), interpolation=cv2.INTER_LINEAR),
        mask=None
        if pair.mask is None
        else cv2.resize(pair.mask, (width, height), interpolation=cv2.INTER_NEAREST),
        boxes=pair.boxes * scale,
    )


def crop(
    pair: Pair, top: int, left: int, size: tuple[int, int], *, min_visible: float = 0.3, min_size: float = 2.0
) -> Pair:
    """Crop a (height, width) window at (top, left), zero-padding images (mask: IGNORE) bottom/right.

    Boxes are shifted and clipped to the window; a box keeping less than `min_visible` of its area,
    or narrower/shorter than `min_size` pixels after clipping, is dropped with its label.
    """
    height, width = size
    h0, w0 = pair.size
    pad_h, pad_w = max(top + height - h0, 0), max(left + width - w0, 0)

    def window(image: np.ndarray, fill: float) -> np.ndarray:
        if pad_h or pad_w:
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=fill)
        return image[top : top + height, left : left + width]

    boxes = pair.boxes - np.array([left, top, left, top], np.float32)
    clipped = np.clip(boxes, 0, np.array([width, height, width, height], np.float32))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    w_c, h_c = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (w_c >= min_size) & (h_c >= min_size) & (w_c * h_c >= min_visible * np.maximum(area, 1e-6))
    return pair.with_(
        ir=window(pair.ir, 0.0),
        visible=window(pair.visible, 0.0),
        mask=None if pair.mask is None else window(pair.mask, IGNORE),
        boxes=clipped[keep],
        labels=pair.labels[keep],
    )


def hflip(pair: Pair) -> Pair:
    """Mirror left-right; box x1' = W - x2, x2' = W - x1."""
    width = pair.size[1]
    boxes = pair.boxes.copy()
    boxes[:, [0, 2]] = width - pair.boxes[:, [2, 0]]
    return pair.with_(
        ir=np.ascontiguousarray(pair.ir[:, ::-1]),
        visible=np.ascontiguousarray(pair.visible[:, ::-1]),
        mask=None if pair.mask is None else np.ascontiguousarray(pair.mask[:, ::-1]),
        boxes=boxes,
    )


@dataclass(frozen=True)
class Photometric:
    """Strengths of the visible-only jitter; 0 disables a step. Factors are drawn from 1 ± strength."""

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    gamma: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: float = 1.0
    noise_std: float = 0.0

    def __call__(self, visible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Jittered copy of a float32 H×W×3 BGR image in 0..1."""
        out: np.ndarray = visible.astype(np.float32, copy=True)
        if self.brightness:
            out *= rng.uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast:
            mean = float(cv2.cvtColor(np.clip(out, 0, 1), cv2.COLOR_BGR2GRAY).mean())
            out = (out - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
        if self.saturation:
            gray = cv2.cvtColor(np.clip(out, 0, 1), cv2.COLOR_BGR2GRAY)[..., None]
            out = gray + (out - gray) * rng.uniform(1 - self.saturation, 1 + self.saturation)
        out = np.clip(out, 0, 1)
        if self.gamma:
            out = np.power(out, np.float32(rng.uniform(1 - self.gamma, 1 + self.gamma)))
        if self.blur_prob and rng.random() < self.blur_prob:
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.1, self.blur_sigma))
        if self.noise_std:
            out = out + rng.normal(0, rng.uniform(0, self.noise_std), out.shape).astype(np.float32)
        return np.clip(out, 0, 1).astype(np.float32)


@dataclass(frozen=True)
class TrainTransform:
    """Random scale → random crop (padded if smaller) → horizontal flip → visible-only jitter."""

    crop_size: tuple[int, int]
    scale_range: tuple[float, float] = (0.75, 1.25)
    flip_prob: float = 0.5
    photometric: Photometric = Photometric()
    min_visible: float = 0.3
    min_box_size: float = 2.0

    def __post_init__(self) -> None:
        low, high = self.scale_range
        if not 0 < low <= high:
            raise DataError(f"scale_range {self.scale_range} must satisfy 0 < low <= high")
        if min(self.crop_size) < 1:
            raise DataError(f"crop_size {self.crop_size} must be positive (height, width)")

    def __call__(self, pair: Pair, rng: np.random.Generator) -> Pair:
        scale = rng.uniform(*self.scale_range)
        h0, w0 = pair.size
        pair = resize(pair, (max(round(h0 * scale), 1), max(round(w0 * scale), 1)))
        height, width = self.crop_size
        top = int(rng.integers(0, max(pair.size[0] - height, 0) + 1))
        left = int(rng.integers(0, max(pair.size[1] - width, 0) + 1))
        pair = crop(pair, top, left, self.crop_size, min_visible=self.min_visible, min_size=self.min_box_size)
        if rng.random() < self.flip_prob:
            pair = hflip(pair)
        return pair.with_(visible=self.photometric(pair.visible, rng))


@dataclass(frozen=True)
class EvalTransform:
    """Deterministic resize to a fixed (height, width); None keeps each pair's own size."""

    size: tuple[int, int] | None

    def __call__(self, pair: Pair, rng: np.random.Generator) -> Pair:
        return pair if self.size is None else resize(pair, self.size)


@dataclass(frozen=True)
class FitLongSide:
    """Resize so the longer side is ``long_side`` (aspect kept), then ``then`` (e.g. a TrainTransform):
    objects reach ``then`` at the scale a detector with that input side sees them."""

    long_side: int
    then: TrainTransform

    def __call__(self, pair: Pair, rng: np.random.Generator) -> Pair:
        scale = self.long_side / max(pair.size)
        pair = resize(pair, (max(round(pair.size[0] * scale), 1), max(round(pair.size[1] * scale), 1)))
        return self.then(pair, rng)
