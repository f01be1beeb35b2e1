"""Plain data passed between the pipeline, the node, replay and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded camera image with its header fields."""

    image: np.ndarray
    stamp_ns: int
    frame_id: str


class Stamped(Protocol):
    """What pairing reads of a frame: its stamp."""

    @property
    def stamp_ns(self) -> int: ...


F = TypeVar("F", bound=Stamped)


@dataclass(frozen=True)
class Pair(Generic[F]):
    """An infrared and a visible frame close enough in time to be fused.

    Frames are decoded `Frame`s, or any stamped items: the node pairs received messages and
    decodes only the pairs it processes.
    """

    ir: F
    visible: F


@dataclass(frozen=True)
class Detection:
    """One object; `box` is (x1, y1, x2, y2) in VISIBLE-image pixels."""

    box: tuple[float, float, float, float]
    class_id: int
    class_name: str
    score: float


@dataclass(frozen=True)
class Result:
    """What one `FusionPipeline.process` call produces, all in the visible image's geometry.

    Attributes:
        fused: H×W×3 uint8 BGR fused image.
        detections: Detections above the score threshold (empty when detection is untrained).
        segmentation: H×W uint8 class ids, or None when the segmentation head is untrained.
        timings_ms: "preprocess", "inference", "postprocess" and "total" in milliseconds.
    """

    fused: np.ndarray
    detections: list[Detection]
    segmentation: np.ndarray | None
    timings_ms: dict[str, float]
