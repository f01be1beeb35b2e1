"""COCO detection mAP through pycocotools' COCOeval (area "all", `max_detections` per image and class).

This module only adapts per-image arrays to COCOeval's in-memory datasets and reads the numbers
back; matching, interpolation and averaging are pycocotools' own.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from training.metrics.errors import MetricsError


def _as_array(item: Mapping[str, Any], key: str, dtype: type, shape_tail: tuple[int, ...]) -> np.ndarray:
    if key not in item:
        raise MetricsError(f"detection entry lacks {key!r}: give dicts with boxes, labels (and scores)")
    return np.asarray(item[key], dtype=dtype).reshape((-1, *shape_tail))


def _annotations(
    entries: Sequence[Mapping[str, Any]], num_classes: int, *, scored: bool
) -> list[dict[str, Any]]:
    """COCO annotation dicts (bbox x,y,w,h; image and category ids from 1) of per-image entries."""
    annotations: list[dict[str, Any]] = []
    for image_id, entry in enumerate(entries, start=1):
        boxes = _as_array(entry, "boxes", np.float64, (4,))
        labels = _as_array(entry, "labels", np.int64, ())
        scores = _as_array(entry, "scores", np.float64, ()) if scored else np.zeros(len(boxes))
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise MetricsError(f"label outside 0..{num_classes - 1}: check num_classes and the label map")
        for (x1, y1, x2, y2), label, score in zip(boxes, labels, scores, strict=True):
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "score": score,
                }
            )
    return annotations


def _coco(annotations: list[dict[str, Any]], num_images: int, num_classes: int) -> COCO:
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i} for i in range(1, num_images + 1)],
        "categories": [{"id": c} for c in range(1, num_classes + 1)],
        "annotations": annotations,
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


def detection_map(
    preds: Sequence[Mapping[str, Any]],
    gts: Sequence[Mapping[str, Any]],
    num_classes: int,
    *,
    max_detections: int = 100,
) -> dict[str, Any]:
    """COCO mAP@0.5 and mAP@0.5:0.95 over a set of images.

    Args:
        preds: per image ``{"boxes": [D,4] x1y1x2y2, "scores": [D], "labels": [D]}`` (arrays or
            CPU tensors).
        gts: per image ``{"boxes": [M,4], "labels": [M]}``, same order as ``preds``.
        num_classes: labels are 0..num_classes-1.
        max_detections: highest-scoring detections kept per image and class (COCO's maxDets).

    Returns:
        ``{"map50", "map", "ap50_per_class", "ap_per_class"}``; the per-class lists hold NaN for
        classes without ground truth, which the means skip (COCO's -1). Means are NaN if no class
        has ground truth.
    """
    if len(preds) != len(gts):
        raise MetricsError(
            f"{len(preds)} prediction entries but {len(gts)} ground-truth entries: pass one per image"
        )
    truth = _coco(_annotations(gts, num_classes, scored=False), len(gts), num_classes)
    found = _coco(_annotations(preds, num_classes, scored=True), len(preds), num_classes)
    evaluator = COCOeval(truth, found, "bbox")
    evaluator.params.maxDets = [max_detections]
    evaluator.params.areaRng, evaluator.params.areaRngLbl = [[0, np.inf]], ["all"]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    # precision [IoU threshold, recall threshold, class, area, maxDets]; -1 where a class has no GT
    precision = evaluator.eval["precision"][:, :, :, 0, 0]
    ap = np.where(precision > -1, precision, np.nan).mean(axis=1).T  # [class, IoU threshold]
    has_gt = ~np.isnan(ap[:, 0])
    return {
        "map50": float(ap[has_gt, 0].mean()) if has_gt.any() else float("nan"),
        "map": float(ap[has_gt].mean()) if has_gt.any() else float("nan"),
        "ap50_per_class": ap[:, 0].tolist(),
        "ap_per_class": ap.mean(axis=1).tolist(),
    }
