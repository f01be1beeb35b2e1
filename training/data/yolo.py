"""YOLO text labels: `class cx cy w h` normalised to the image size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.data.errors import DataError


def read_yolo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(class ids int64 [M], boxes float32 [M,4] normalised cx, cy, w, h) of one label file.

    The file is read as a flat list of numbers in groups of five, not line by line: some MSRS
    detection labels hold several boxes run together on one line.
    """
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except ValueError as err:
        raise DataError(f"YOLO label {path} holds a token that is not a number: fix the file") from err
    if values.size % 5:
        raise DataError(
            f"YOLO label {path} holds {values.size} numbers, not a multiple of 5 (class cx cy w h)"
        )
    rows = values.reshape(-1, 5)
    return rows[:, 0].astype(np.int64), rows[:, 1:].astype(np.float32)


def yolo_to_xyxy(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised cx, cy, w, h [M,4] → pixel x1, y1, x2, y2 [M,4] for a width×height image."""
    cx, cy, w, h = (boxes[:, i] for i in range(4))
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return (xyxy * np.array([width, height, width, height], np.float32)).astype(np.float32)
