"""Segmentation evaluation without mask labels (box measures) and with them (true mIoU on MSRS)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from training.data import MSRSDataset
from training.metrics.boxseg import BoxConsistency, box_mask, matched_boxes
from training.metrics.errors import MetricsError
from training.models.centernet import ROAD_CLASSES
from training.models.seg_classes import MSRS_TO_SEG, SEG_CLASSES, seg_ids_of_road, seg_mask_of_msrs
from training.seg_eval import contact_sheet, evaluate

PERSON, VEHICLE = SEG_CLASSES.index("person"), SEG_CLASSES.index("vehicle")
SIZE = (40, 60)
BOXES = np.array([[10, 5, 20, 35], [30, 10, 55, 30]], np.float32)
CLASSES = np.array([PERSON, VEHICLE])


def summary(pred: np.ndarray) -> dict[str, float]:
    acc = BoxConsistency(len(SEG_CLASSES))
    acc.add(pred, BOXES, CLASSES)
    return acc.summary(SEG_CLASSES)


def test_seg_classes_group_the_road_classes_and_msrs_ids() -> None:
    ids = seg_ids_of_road(np.arange(len(ROAD_CLASSES)))
    assert [SEG_CLASSES[i] for i in ids] == [
        "person",
        "two-wheeler",
        "vehicle",
        "two-wheeler",
        "vehicle",
        "vehicle",
    ]
    msrs = np.array([[0, 1, 2, 3, 4, 8, 255]], np.uint8)  # unlabelled car person bike curve bump ignore
    assert seg_mask_of_msrs(msrs).tolist() == [[0, VEHICLE, PERSON, 2, 0, 0, 255]]
    assert len(MSRS_TO_SEG) == 9


def test_box_mask_paints_smaller_boxes_on_top() -> None:
    boxes = np.array([[0, 0, 10, 10], [2, 2, 4, 4]], np.float32)
    mask = box_mask(boxes, np.array([VEHICLE, PERSON]), (12, 12))
    assert mask[3, 3] == PERSON and mask[8, 8] == VEHICLE and mask[11, 11] == 0


def test_box_painted_prediction_is_perfect_on_every_box_measure() -> None:
    out = summary(box_mask(BOXES, CLASSES, SIZE))
    assert out["box_iou"] == pytest.approx(1.0) and out["inside_fraction"] == 1.0
    assert out["box_miou"] == pytest.approx(1.0) and out["boxes"] == 2


def test_leaks_shrinks_and_misses_lower_the_measures() -> None:
    pred = box_mask(BOXES, CLASSES, SIZE)
    leaking = pred.copy()
    leaking[5:35, 20:25] = PERSON  # the person mask runs 5 px past its box
    out = summary(leaking)
    assert out["box_iou/person"] == pytest.approx(10 * 30 / (15 * 30)) and out["box_iou/vehicle"] == 1.0
    assert out["inside_fraction"] < 1.0 and out["box_miou"] < 1.0
    shrunk = np.zeros(SIZE, np.uint8)
    shrunk[10:30, 12:18] = PERSON  # inside its box, smaller than it; vehicle missed
    out = summary(shrunk)
    assert out["box_iou/person"] == pytest.approx(20 * 6 / (30 * 10)) and out["box_iou/vehicle"] == 0.0
    assert out["inside_fraction"] == 1.0
    with pytest.raises(MetricsError, match="one class per box"):
        BoxConsistency(len(SEG_CLASSES)).add(pred, BOXES, CLASSES[:1])


def test_a_neighbour_of_the_same_class_does_not_widen_the_tight_box() -> None:
    boxes = np.array([[10, 10, 20, 30], [22, 10, 32, 30]], np.float32)  # two people side by side
    classes = np.array([PERSON, PERSON])
    acc = BoxConsistency(len(SEG_CLASSES))
    acc.add(box_mask(boxes, classes, SIZE), boxes, classes)
    assert acc.summary(SEG_CLASSES)["box_iou"] == pytest.approx(1.0)


def write_msrs(root: Path) -> None:
    """A tiny MSRS split with 9-class masks: a car (id 1) and a person (id 2) on unlabelled ground."""
    base = root / "test"
    for sub in ("ir", "vi", "Segmentation_labels"):
        (base / sub).mkdir(parents=True)
    for name, shift in (("00001N", 0), ("00002D", 8)):
        mask = np.zeros(SIZE, np.uint8)
        mask[20:35, 5 + shift : 25 + shift] = 1
        mask[5:30, 40:46] = 2
        mask[0:3, :] = 4  # curve: background in SEG_CLASSES
        cv2.imwrite(str(base / "Segmentation_labels" / f"{name}.png"), mask)
        cv2.imwrite(str(base / "ir" / f"{name}.png"), mask * 60)
        cv2.imwrite(str(base / "vi" / f"{name}.png"), np.dstack([mask * 40] * 3))


def test_msrs_masks_give_the_true_miou(tmp_path: Path) -> None:
    """The real-mask path: a user with MSRS gets true mIoU over the mapped classes."""
    write_msrs(tmp_path)
    dataset = MSRSDataset(tmp_path, "test", num_seg_classes=9)
    pairs = [dataset.load(i) for i in range(len(dataset))]
    assert all(p.mask is not None for p in pairs)

    def exact(pair):  # type: ignore[no-untyped-def]
        return seg_mask_of_msrs(pair.mask)

    out = evaluate(exact, pairs)
    assert out["mask_pairs"] == 2 and out["miou"] == pytest.approx(1.0)
    assert np.isnan(out["miou/two-wheeler"])  # in neither prediction nor label: not averaged

    def no_person(pair):  # type: ignore[no-untyped-def]
        pred = seg_mask_of_msrs(pair.mask)
        pred[pred == PERSON] = 0
        return pred

    out = evaluate(no_person, pairs)
    assert out["miou/person"] == 0.0 and out["miou/vehicle"] == pytest.approx(1.0)
    assert out["miou"] < 0.7
    assert "box_iou" not in out or np.isnan(out["box_iou"])  # no GT boxes in these pairs


def test_contact_sheet_has_a_row_per_pair(tmp_path: Path) -> None:
    write_msrs(tmp_path)
    dataset = MSRSDataset(tmp_path, "test", num_seg_classes=9)
    pairs = [dataset.load(i) for i in range(len(dataset))]
    path = contact_sheet(lambda p: seg_mask_of_msrs(p.mask), pairs, tmp_path / "sheet.png")
    sheet = cv2.imread(str(path))
    assert sheet is not None and sheet.shape[0] == 24 + 2 * 180 and sheet.shape[1] == 3 * 270
    # The person column of the mask tile is painted in the person colour (blended).
    row = 24 + 180 + 120
    assert sheet[row, 2 * 270 + int(43 * 4.5), 2] > sheet[row, 2 * 270 + int(43 * 4.5), 0]


def test_matched_boxes_needs_the_class_and_the_overlap() -> None:
    found = np.array([[10, 5, 20, 35], [30, 10, 40, 30]], np.float32)  # person exact, vehicle half
    assert matched_boxes(BOXES, CLASSES, found, CLASSES) == 1
    assert matched_boxes(BOXES, CLASSES, found[:1], np.array([VEHICLE])) == 0  # wrong class
    assert matched_boxes(BOXES, CLASSES, found, CLASSES, iou=0.3) == 2
