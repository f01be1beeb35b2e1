"""COCO-style detection mAP (the numbers pycocotools' COCOeval gives for area "all", maxDets 100).

Hand-written rather than calling pycocotools at run time: COCOeval needs JSON-shaped datasets,
prints, and is a dev-only dependency here; the tests check this code against it on the same boxes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from training.metrics.errors import MetricsError

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x1,y1,x2,y2 boxes a [M,4] and b [K,4] → [M,K] (areas w*h, no +1, as COCO)."""
    wh = np.clip(
        np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None
    )
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(iou: np.ndarray) -> np.ndarray:
    """Greedy COCO matching of score-sorted detections to GTs → [T, D] true-positive flags.

    Each detection, in score order, takes the still-free GT of highest IoU at or above the threshold.
    """
    tp = np.zeros((len(IOU_THRESHOLDS), iou.shape[0]), dtype=bool)
    for t, thr in enumerate(IOU_THRESHOLDS):
        free = np.ones(iou.shape[1], dtype=bool)
        for d in range(iou.shape[0]):
            cand = np.where(free & (iou[d] >= min(thr, 1 - 1e-10)), iou[d], -1.0)
            if cand.size and cand.max() >= 0:
                # Last maximum, as COCOeval (it replaces its best on equal IoU).
                g = cand.size - 1 - int(np.argmax(cand[::-1]))
                free[g] = False
                tp[t, d] = True
    return tp


def _average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> np.ndarray:
    """101-point interpolated AP per IoU threshold → [T]."""
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[:, order]
    tps = np.cumsum(tp, axis=1, dtype=np.float64)
    fps = np.cumsum(~tp, axis=1, dtype=np.float64)
    ap = np.zeros(len(IOU_THRESHOLDS))
    for t in range(len(IOU_THRESHOLDS)):
        recall = tps[t] / num_gt
        precision = tps[t] / (tps[t] + fps[t] + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
        idx = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
        ap[t] = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0).mean()
    return ap


def _as_array(item: Mapping[str, Any], key: str, dtype: type, shape_tail: tuple[int, ...]) -> np.ndarray:
    if key not in item:
        raise MetricsError(f"detection entry lacks {key!r}: give dicts with boxes, labels (and scores)")
    return np.asarray(item[key], dtype=dtype).reshape((-1, *shape_tail))


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
    ap = np.full((num_classes, len(IOU_THRESHOLDS)), np.nan)
    per_class: dict[int, tuple[list[np.ndarray], list[np.ndarray], int]] = {
        c: ([], [], 0) for c in range(num_classes)
    }
    for pred, gt in zip(preds, gts, strict=True):
        p_boxes = _as_array(pred, "boxes", np.float64, (4,))
        p_scores = _as_array(pred, "scores", np.float64, ())
        p_labels = _as_array(pred, "labels", np.int64, ())
        g_boxes = _as_array(gt, "boxes", np.float64, (4,))
        g_labels = _as_array(gt, "labels", np.int64, ())
        for labels in (p_labels, g_labels):
            if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
                raise MetricsError(f"label outside 0..{num_classes - 1}: check num_classes and the label map")
        for c in np.union1d(p_labels, g_labels):
            d = np.flatnonzero(p_labels == c)
            d = d[np.argsort(-p_scores[d], kind="mergesort")][:max_detections]
            g = g_boxes[g_labels == c]
            scores, tps, num_gt = per_class[int(c)]
            scores.append(p_scores[d])
            tps.append(_match(box_iou(p_boxes[d], g)))
            per_class[int(c)] = (scores, tps, num_gt + len(g))
    for c, (scores, tps, num_gt) in per_class.items():
        if num_gt == 0:
            continue
        if not scores or sum(len(s) for s in scores) == 0:
            ap[c] = 0.0
            continue
        ap[c] = _average_precision(np.concatenate(scores), np.concatenate(tps, axis=1), num_gt)
    has_gt = ~np.isnan(ap[:, 0])
    return {
        "map50": float(ap[has_gt, 0].mean()) if has_gt.any() else float("nan"),
        "map": float(ap[has_gt].mean()) if has_gt.any() else float("nan"),
        "ap50_per_class": ap[:, 0].tolist(),
        "ap_per_class": ap.mean(axis=1).tolist(),
    }
