"""The in-memory pair that loaders fill and transforms change, and its conversion to tensors."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch


@dataclass
class Pair:
    """One registered IR/visible pair as numpy arrays (what the joint transforms operate on).

    Attributes:
        ir: float32 H×W, 0..1.
        visible: float32 H×W×3, BGR, 0..1.
        boxes: float32 M×4, x1, y1, x2, y2 in pixels of these images.
        labels: int64 M, indices into the experiment's class names.
        mask: uint8 H×W class ids (255 = ignore), or None when the pair has no segmentation label.
        name: file stem, used for splits and logs.
    """

    ir: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    mask: np.ndarray | None
    name: str

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images."""
        return self.ir.shape[0], self.ir.shape[1]

    def with_(self, **changes: Any) -> Pair:
        """A copy with some fields replaced (transforms never modify their input)."""
        return replace(self, **changes)


def empty_boxes() -> tuple[np.ndarray, np.ndarray]:
    """(boxes [0,4] float32, labels [0] int64) for pairs without objects."""
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)


def to_sample(pair: Pair) -> dict[str, Any]:
    """The training sample dict: ir [1,H,W], visible [3,H,W] (BGR), boxes [M,4], labels [M], mask [H,W]."""
    return {
        "ir": torch.from_numpy(np.ascontiguousarray(pair.ir, np.float32)).unsqueeze(0),
        "visible": torch.from_numpy(np.ascontiguousarray(pair.visible.transpose(2, 0, 1), np.float32)),
        "boxes": torch.from_numpy(np.ascontiguousarray(pair.boxes, np.float32)).reshape(-1, 4),
        "labels": torch.from_numpy(np.ascontiguousarray(pair.labels, np.int64)).reshape(-1),
        "mask": None if pair.mask is None else torch.from_numpy(pair.mask.astype(np.int64)),
        "name": pair.name,
    }
