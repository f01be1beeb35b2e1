"""Segmentation evaluation without mask labels: consistency of predicted masks with GT boxes.

- box consistency: for each GT box of class c, the tight box of the predicted class-c pixels in
  the box grown by ``margin`` of its size (other same-class GT boxes cut out, so a neighbour's
  mask does not count) → IoU with the GT box (0 when no pixel is predicted). Says whether the
  mask has the object's extent; cannot say whether its shape inside the box is right.
- inside fraction: of all pixels predicted as an object class, the fraction inside a GT box of
  that class. Low = masks on unlabelled areas (or on unlabelled objects: it is a lower bound).
- box mIoU: mIoU against the mask painted from the GT boxes (larger boxes first, so smaller
  ones stay on top). A box-level reference: a perfect object mask scores below 1 on it, because
  a box holds background too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.metrics.errors import MetricsError
from training.metrics.segmentation import confusion_matrix, iou_from_confusion


def _pixel_box(box: np.ndarray, size: tuple[int, int], margin: float = 0.0) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer pixel range of a box grown by ``margin``, clipped, at least one pixel."""
    grow = np.maximum(box[2:] - box[:2], 0) * margin
    x0, y0 = np.clip(np.floor(box[:2] - grow), 0, [size[1] - 1, size[0] - 1]).astype(int)
    x1, y1 = np.clip(np.ceil(box[2:] + grow), [x0 + 1, y0 + 1], [size[1], size[0]]).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def box_mask(boxes: np.ndarray, classes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W class ids painted from boxes (background 0), larger boxes first."""
    mask = np.zeros(size, np.uint8)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in np.argsort(-areas, kind="stable"):
        x0, y0, x1, y1 = _pixel_box(boxes[i], size)
        mask[y0:y1, x0:x1] = classes[i]
    return mask


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def matched_boxes(
    gt: np.ndarray, gt_classes: np.ndarray, found: np.ndarray, found_classes: np.ndarray, iou: float = 0.5
) -> int:
    """How many GT boxes have a found box of their class with IoU ≥ ``iou`` (recall's numerator)."""
    return sum(
        any(fc == c and _iou(tuple(g), tuple(f)) >= iou for f, fc in zip(found, found_classes, strict=True))
        for g, c in zip(gt, gt_classes, strict=True)
    )


@dataclass
class BoxConsistency:
    """Accumulates the three measures over pairs (``add``), then ``summary``."""

    num_classes: int
    margin: float = 0.5
    box_ious: list[float] = field(default_factory=list)
    box_classes: list[int] = field(default_factory=list)
    inside: int = 0
    predicted: int = 0
    confusion: np.ndarray | None = None

    def add(self, pred: np.ndarray, boxes: np.ndarray, classes: np.ndarray) -> None:
        """pred: H×W predicted class ids; boxes [M,4] x1,y1,x2,y2 and classes [M] in its pixels."""
        size = (pred.shape[0], pred.shape[1])
        if len(boxes) != len(classes):
            raise MetricsError(f"{len(boxes)} boxes but {len(classes)} classes: pass one class per box")
        in_class = np.zeros((self.num_classes, *size), bool)
        for box, c in zip(boxes, classes, strict=True):
            x0, y0, x1, y1 = _pixel_box(box, size)
            in_class[c, y0:y1, x0:x1] = True
        for i, (box, c) in enumerate(zip(boxes, classes, strict=True)):
            gt = _pixel_box(box, size)
            x0, y0, x1, y1 = _pixel_box(box, size, self.margin)
            others = np.zeros(size, bool)
            for j in np.flatnonzero(classes == c):
                if j != i:
                    ox0, oy0, ox1, oy1 = _pixel_box(boxes[j], size)
                    others[oy0:oy1, ox0:ox1] = True
            own = (pred == c) & ~(others & ~_region(gt, size))
            ys, xs = np.nonzero(own[y0:y1, x0:x1])
            tight = (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1) if len(xs) else None
            self.box_ious.append(0.0 if tight is None else _iou(gt, tight))
            self.box_classes.append(int(c))
        objects = pred > 0
        self.predicted += int(objects.sum())
        self.inside += int(np.take_along_axis(in_class, pred[None].astype(np.int64), 0)[0][objects].sum())
        cm = confusion_matrix(pred, box_mask(boxes, classes, size), self.num_classes)
        self.confusion = cm if self.confusion is None else self.confusion + cm

    def summary(self, class_names: tuple[str, ...]) -> dict[str, float]:
        """Mean box IoU (all boxes and per class), inside fraction, box mIoU and per-class box IoU."""
        ious, cls = np.array(self.box_ious), np.array(self.box_classes)
        out = {"box_iou": float(ious.mean()) if len(ious) else float("nan"), "boxes": float(len(ious))}
        for c in sorted(set(self.box_classes)):
            out[f"box_iou/{class_names[c]}"] = float(ious[cls == c].mean())
        out["inside_fraction"] = self.inside / self.predicted if self.predicted else float("nan")
        if self.confusion is not None:
            iou = iou_from_confusion(self.confusion)
            out["box_miou"] = iou["miou"]
            out.update({f"box_miou/{n}": v for n, v in zip(class_names, iou["iou_per_class"], strict=True)})
        return out


def _region(box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    region = np.zeros(size, bool)
    region[box[1] : box[3], box[0] : box[2]] = True
    return region
