"""Semantic segmentation IoU from a confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from training.metrics.errors import MetricsError

IGNORE_INDEX = 255


def confusion_matrix(
    pred: Any, target: Any, num_classes: int, *, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Confusion matrix [C, C] (rows = target class, columns = predicted class) over all pixels.

    Args:
        pred: predicted class ids, any integer array/CPU tensor of the target's shape.
        target: true class ids; pixels equal to ``ignore_index`` are skipped.
        num_classes: C.
    """
    p = np.asarray(pred).astype(np.int64).ravel()
    t = np.asarray(target).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise MetricsError(f"prediction has {p.size} pixels, target {t.size}: resize them to one shape")
    keep = t != ignore_index
    p, t = p[keep], t[keep]
    if t.size and (t.min() < 0 or t.max() >= num_classes or p.min() < 0 or p.max() >= num_classes):
        raise MetricsError(f"class id outside 0..{num_classes - 1}: check num_classes and the label map")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def iou_from_confusion(confusion: np.ndarray) -> dict[str, Any]:
    """Per-class IoU = TP / (TP + FP + FN) and their mean over classes present in target or prediction.

    Returns:
        ``{"iou_per_class": list (NaN where a class is in neither), "miou": float}``.
    """
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    valid = ~np.isnan(iou)
    return {"iou_per_class": iou.tolist(), "miou": float(iou[valid].mean()) if valid.any() else float("nan")}


def segmentation_iou(
    pred: Any, target: Any, num_classes: int, *, ignore_index: int = IGNORE_INDEX
) -> dict[str, Any]:
    """Per-class IoU and mIoU of one batch (accumulate :func:`confusion_matrix` for a whole set)."""
    return iou_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index=ignore_index))
