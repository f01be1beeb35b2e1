"""Evaluation of a segmentation predictor on held-out pairs, with or without mask labels.

Pairs with a mask label (MSRS ``Segmentation_labels``, mapped onto SEG_CLASSES) give a true
mIoU; every pair with GT boxes gives the box measures of ``training.metrics.boxseg``. A contact
sheet shows the visible image, the IR image and the predicted mask over the visible image with
the GT boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from fusion_node.pipeline.visualize import overlay as draw_overlay
from fusion_node.pipeline.visualize import palette, stack_rows
from training.data.sample import Pair
from training.metrics.boxseg import BoxConsistency
from training.metrics.segmentation import confusion_matrix, iou_from_confusion
from training.models.seg_classes import SEG_CLASSES, seg_ids_of_road, seg_mask_of_msrs

Predictor = Callable[[Pair], np.ndarray]
"""A pair → H×W predicted SEG_CLASSES ids at the pair's size."""

# The node's colours (fusion_node.pipeline.visualize), so the sheet reads like ~/segmentation/color.
PALETTE = palette(len(SEG_CLASSES))
TILE_HEIGHT = 180


def evaluate(predict: Predictor, pairs: Sequence[Pair]) -> dict[str, float]:
    """Box measures on the pairs' GT boxes (labels index ROAD_CLASSES) and, where a pair has a mask
    label (MSRS ids), the true mIoU on those pairs ("miou", "miou/<class>")."""
    boxes = BoxConsistency(len(SEG_CLASSES))
    true_confusion = np.zeros((len(SEG_CLASSES),) * 2, np.int64)
    with_masks = 0
    for pair in pairs:
        pred = predict(pair)
        boxes.add(pred, pair.boxes, seg_ids_of_road(pair.labels))
        if pair.mask is not None:
            true_confusion += confusion_matrix(pred, seg_mask_of_msrs(pair.mask), len(SEG_CLASSES))
            with_masks += 1
    out = {"pairs": float(len(pairs)), **boxes.summary(SEG_CLASSES)}
    if with_masks:
        iou = iou_from_confusion(true_confusion)
        out.update({"mask_pairs": float(with_masks), "miou": iou["miou"]})
        out.update({f"miou/{n}": v for n, v in zip(SEG_CLASSES, iou["iou_per_class"], strict=True)})
    return out


def overlay(visible: np.ndarray, pred: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """uint8 BGR: the predicted classes blended over the visible image as the node draws them, GT
    boxes in white."""
    image = np.clip(visible * 255.0 + 0.5, 0, 255).astype(np.uint8)
    image = draw_overlay(image, pred.astype(np.uint8), [], n_classes=len(SEG_CLASSES))
    for x1, y1, x2, y2 in boxes.astype(int):
        cv2.rectangle(image, (x1, y1), (x2, y2), (255, 255, 255), 1)
    return image


def contact_sheet(predict: Predictor, pairs: Sequence[Pair], path: Path) -> Path:
    """PNG: one row per pair (visible or fused | IR | mask over it with GT boxes), a legend on top."""
    rows = []
    for pair in pairs:
        pred = predict(pair)
        tiles = [
            np.clip(pair.visible * 255.0 + 0.5, 0, 255).astype(np.uint8),
            cv2.cvtColor(np.clip(pair.ir * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR),
            overlay(pair.visible, pred, pair.boxes),
        ]
        scale = TILE_HEIGHT / pair.size[0]
        rows.append(
            np.hstack([cv2.resize(t, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for t in tiles])
        )
    width = max(r.shape[1] for r in rows)
    legend = np.full((24, width, 3), 255, np.uint8)
    for i, name in enumerate(SEG_CLASSES[1:], start=1):
        cv2.rectangle(legend, (8 + 150 * (i - 1), 6), (20 + 150 * (i - 1), 18), PALETTE[i].tolist(), -1)
        cv2.putText(legend, name, (26 + 150 * (i - 1), 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    sheet = stack_rows([legend, *rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)
    return path
