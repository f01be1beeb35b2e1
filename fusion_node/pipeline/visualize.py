"""Drawing results for humans: a colour per class, masks blended, boxes labelled."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from fusion_node.pipeline.errors import PipelineError
from fusion_node.pipeline.types import Detection


def palette(n_classes: int) -> np.ndarray:
    """n_classes×3 uint8 BGR colours, fixed (PASCAL VOC bit-interleaving); class 0 is black."""
    ids = np.arange(n_classes)
    colours = np.zeros((n_classes, 3), np.uint8)
    for bit in range(8):
        for channel in range(3):
            colours[:, channel] |= (((ids >> (3 * bit + channel)) & 1) << (7 - bit)).astype(np.uint8)
    return colours[:, ::-1].copy()  # RGB -> BGR


def colorize(mask: np.ndarray, n_classes: int) -> np.ndarray:
    """H×W class ids -> H×W×3 BGR.

    Raises:
        PipelineError: the mask holds an id >= n_classes.
    """
    if mask.size and int(mask.max()) >= n_classes:
        raise PipelineError(f"mask holds class {int(mask.max())} but n_classes is {n_classes}")
    if mask.dtype == np.uint8:  # a table lookup in OpenCV: ~10x faster than numpy fancy indexing
        return cv2.applyColorMap(mask, _colour_table(n_classes))
    return palette(n_classes)[mask]


@lru_cache(maxsize=8)
def _colour_table(n_classes: int) -> np.ndarray:
    """palette(n_classes) as the 256×1×3 table cv2.applyColorMap takes (ids >= n_classes black)."""
    table = np.zeros((256, 1, 3), np.uint8)
    table[: min(n_classes, 256), 0] = palette(n_classes)[:256]
    table.flags.writeable = False
    return table


def overlay(
    fused: np.ndarray,
    mask: np.ndarray | None,
    detections: Sequence[Detection],
    *,
    n_classes: int | None = None,
    alpha: float = 0.45,
    coloured: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of `fused` with the mask blended in (class 0 left clear) and labelled boxes on top.

    `coloured`: `colorize(mask, n_classes)` when the caller has it already (the node publishes it too).
    """
    if mask is None:
        image = fused.copy()
    else:
        if coloured is None:
            coloured = colorize(mask, n_classes or int(mask.max(initial=0)) + 1)
        image = cv2.addWeighted(fused, 1 - alpha, coloured, alpha, 0)
        cv2.copyTo(fused, (mask == 0).view(np.uint8), image)  # class 0 back to the fused pixels; in place
    colours = palette(max((d.class_id for d in detections), default=0) + 2)
    for det in detections:
        colour = tuple(int(c) for c in colours[det.class_id + 1])  # +1: never class-0 black
        x1, y1, x2, y2 = (round(v) for v in det.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        label = f"{det.class_name} {det.score:.2f}"
        (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(y1 - text_h - baseline, 0)
        cv2.rectangle(image, (x1, top), (x1 + text_w, top + text_h + baseline), colour, cv2.FILLED)
        cv2.putText(
            image, label, (x1, top + text_h), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
        )
    return image


TILE_LABEL_HEIGHT = 24  # the white band above a contact-sheet tile


def stack_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Contact-sheet rows (H×W×3, widths may differ) stacked, each padded white to the widest."""
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.vstack(padded)


def labelled_tile(image: np.ndarray, label: str, height: int) -> np.ndarray:
    """A contact-sheet tile: `image` (BGR or gray) resized to `height`, aspect kept, under a white
    band with `label` in black."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
    width = round(bgr.shape[1] * height / bgr.shape[0])
    tile = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    band = np.full((TILE_LABEL_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(
        band, label, (4, TILE_LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
    )
    return np.vstack([band, tile])
