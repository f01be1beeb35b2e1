"""The segmentation class set, aligned with the detector's road classes, and the maps onto it.

One set for the box-supervised head: background + the three groups the detector's ROAD_CLASSES
fall into. Two-wheelers and vehicles are grouped because the few labelled pairs here hold too few
bicycles, motorcycles, buses and trucks to learn them apart (and MSRS masks group them the same).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from training.models.centernet import ROAD_CLASSES
from training.models.errors import ModelConfigError

SEG_CLASSES: tuple[str, ...] = ("background", "person", "two-wheeler", "vehicle")
BACKGROUND = 0
# Detector / dataset road class (ROAD_CLASSES name) → segmentation class name.
ROAD_TO_SEG: Mapping[str, str] = {
    "person": "person",
    "bicycle": "two-wheeler",
    "motorcycle": "two-wheeler",
    "car": "vehicle",
    "bus": "vehicle",
    "truck": "vehicle",
}
# Dataset names that differ from ROAD_CLASSES (ClassMap's name_map): M3FD labels people "People".
ROAD_NAME_MAP: Mapping[str, str] = {"people": "person"}
# MSRS/MFNet segmentation label ids (unlabelled, car, person, bike, curve, car stop, guardrail,
# color cone, bump) → SEG_CLASSES ids: the road objects keep their class, the rest is background.
MSRS_TO_SEG: tuple[int, ...] = (0, 3, 1, 2, 0, 0, 0, 0, 0)

if set(ROAD_TO_SEG) != set(ROAD_CLASSES) or not set(ROAD_TO_SEG.values()) <= set(SEG_CLASSES[1:]):
    raise ModelConfigError("ROAD_TO_SEG must map every ROAD_CLASSES name onto a SEG_CLASSES object class")

# ROAD_CLASSES index → SEG_CLASSES id, for vectorised label mapping.
_ROAD_INDEX_TO_SEG = np.array([SEG_CLASSES.index(ROAD_TO_SEG[name]) for name in ROAD_CLASSES], np.int64)


def seg_ids_of_road(labels: np.ndarray) -> np.ndarray:
    """Indices into ROAD_CLASSES (detector classes, dataset labels) → SEG_CLASSES ids."""
    labels = np.asarray(labels, np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(ROAD_CLASSES)):
        raise ModelConfigError(
            f"road class index {int(labels.max())} outside 0..{len(ROAD_CLASSES) - 1}: labels must "
            "index training.models.centernet.ROAD_CLASSES"
        )
    out: np.ndarray = _ROAD_INDEX_TO_SEG[labels]
    return out


def seg_mask_of_msrs(mask: np.ndarray) -> np.ndarray:
    """An MSRS/MFNet 9-class label mask (uint8 ids, 255 = ignore) → SEG_CLASSES ids (255 kept)."""
    table = np.full(256, 255, np.uint8)
    table[: len(MSRS_TO_SEG)] = MSRS_TO_SEG
    out: np.ndarray = table[np.asarray(mask, np.uint8)]
    return out
