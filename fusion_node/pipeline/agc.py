"""Automatic gain control: raw thermal counts (16-bit, float) to a steady 8-bit image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fusion_node.pipeline.errors import PipelineError

_SAMPLE_PIXELS = 65_536  # percentiles on a strided subsample: ~1 ms whatever the sensor size


def stretch(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly onto 0..255 uint8, saturating outside."""
    scale = 255.0 / max(high - low, 1e-6)
    return np.clip((image.astype(np.float32) - low) * scale, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class AgcConfig:
    """How `AutoGain` maps infrared images to uint8.

    Attributes:
        mode: "auto" = on for non-uint8 input, pass-through for uint8; "on" = always stretch;
            "off" = no stretch (uint8 as is, 16-bit >> 8, float min-max).
        low_percentile, high_percentile: the robust intensity window (percent of pixels).
        smoothing: weight of the previous window in the moving average, 0 (none) .. <1.
    """

    mode: Literal["auto", "on", "off"] = "auto"
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    smoothing: float = 0.9

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "on", "off"):
            raise PipelineError(f"AGC mode {self.mode!r} is unknown; use 'auto', 'on' or 'off'")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise PipelineError(
                f"AGC percentiles ({self.low_percentile}, {self.high_percentile}) must satisfy "
                "0 <= low < high <= 100"
            )
        if not 0.0 <= self.smoothing < 1.0:
            raise PipelineError(f"AGC smoothing {self.smoothing} must be in [0, 1)")


class AutoGain:
    """Per-frame percentile window, smoothed over time so the image does not flicker.

    Not thread-safe: one instance per image stream.
    """

    def __init__(self, config: AgcConfig | None = None) -> None:
        self.config = config or AgcConfig()
        self._window: tuple[float, float] | None = None
        self._dtype: np.dtype | None = None

    def reset(self) -> None:
        """Forget the smoothed window (call after a time jump or a camera change)."""
        self._window = None
        self._dtype = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Map `image` (any shape, uint8/uint16/float/int) to uint8 of the same shape."""
        mode = self.config.mode
        if image.dtype == np.uint8 and mode != "on":
            return image
        if mode == "off":
            if image.dtype == np.uint16:
                return (image >> 8).astype(np.uint8)
            return stretch(image, float(image.min()), float(image.max()))
        return stretch(image, *self._smoothed_window(image))

    def _smoothed_window(self, image: np.ndarray) -> tuple[float, float]:
        if image.dtype != self._dtype:  # a new scale: the old window means nothing
            self.reset()
            self._dtype = image.dtype
        stride = max(1, int(np.sqrt(image.size / _SAMPLE_PIXELS)))
        sample = image[::stride, ::stride] if image.ndim >= 2 else image[::stride]
        low, high = np.percentile(sample, (self.config.low_percentile, self.config.high_percentile))
        if self._window is not None:
            a = self.config.smoothing
            low = a * self._window[0] + (1 - a) * low
            high = a * self._window[1] + (1 - a) * high
        self._window = (float(low), float(high))
        return self._window
