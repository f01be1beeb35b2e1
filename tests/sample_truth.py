"""Ground truth of the bundled sample pairs (fusion_node/sample/README.md), for tests that check
real detections: the MSRS detection labels (fused-image set) read from the shared data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from training.data.yolo import read_yolo, yolo_to_xyxy
from training.paths import SHARED_DATA

Box = Sequence[float]  # x1, y1, x2, y2 in pixels
LABELS = SHARED_DATA / "msrs_detection_labels" / "fusion" / "test"
CLASSES = ("person", "bicycle", "car")  # the label files' class ids
SIZE = (640, 480)  # width, height of every sample pair


def sample_truth(name: str) -> list[tuple[str, Box]]:
    """[(class name, box px)] of sample pair `name`; skips the test when the labels are absent."""
    path = LABELS / f"{name}.txt"
    if not path.is_file():
        pytest.skip(f"sample labels not found at {path}")
    ids, boxes = read_yolo(path)
    return [(CLASSES[i], tuple(map(float, b))) for i, b in zip(ids, yolo_to_xyxy(boxes, *SIZE), strict=True)]


def best_match(found: Sequence[tuple[str, Box]], truth: Sequence[tuple[str, Box]]) -> float:
    """The best IoU of a found box with a ground-truth box of the same class (0 if none)."""

    def iou(a: Box, b: Box) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union if union > 0 else 0.0

    return max((iou(f, t) for cf, f in found for ct, t in truth if cf == ct), default=0.0)


def mask_against_boxes(
    mask: np.ndarray, class_id: int, truth: Sequence[tuple[str, Box]], name: str
) -> tuple[float, float]:
    """(fraction of the mask's ``class_id`` pixels inside ``name`` boxes of ``truth``, fraction of the
    largest such box those pixels cover): the mask is on the labelled objects and not empty there."""
    inside = np.zeros(mask.shape, dtype=bool)
    boxes = [tuple(round(v) for v in box) for cls, box in truth if cls == name]
    for x1, y1, x2, y2 in boxes:
        inside[y1:y2, x1:x2] = True
    hits = mask == class_id
    x1, y1, x2, y2 = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    return float(hits[inside].sum() / max(1, hits.sum())), float(hits[y1:y2, x1:x2].mean())
