"""Fusion metrics against the reference MATLAB tables, mAP on hand-computed cases, IoU by hand."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from training.metrics.detection import detection_map
from training.metrics.errors import MetricsError
from training.metrics.fusion import fusion_metrics, read_gray, structural_similarity, to_gray
from training.metrics.reference import REFERENCE_METRICS, load_reference
from training.metrics.segmentation import confusion_matrix, segmentation_iou

# Every reference metric is reproduced bit-for-bit in its arithmetic; VIF's Gaussian filtering
# sums in a different order than MATLAB's filter2 (worst seen 2.3e-7 over all 42 × 9 images).
REL_TOL = 1e-6
IMAGES = (1, 5, 17, 30, 42)  # a spread of scenes and sizes (05 is 280×280); the CLI checks all 42


def test_metrics_match_reference_tables(tno: Path) -> None:
    refs = {n: load_reference(tno / "reference_metrics", n) for n in REFERENCE_METRICS}
    methods = list(refs["EN"])
    assert len(methods) == 9
    for i in IMAGES:
        ir, vis = read_gray(tno / "ir" / f"{i:02d}.png"), read_gray(tno / "vi" / f"{i:02d}.png")
        for method in methods:
            fused = read_gray(tno / "baselines" / method / f"{i:02d}.png")
            got = fusion_metrics(fused, ir, vis, REFERENCE_METRICS)
            for name, value in got.items():
                expected = refs[name][method][i - 1]
                assert value == pytest.approx(expected, rel=REL_TOL), (name, method, i)


def test_colour_fused_image_read_like_matlab_rgb2gray(tno: Path) -> None:
    # SeAFusion's outputs are colour: OpenCV's own gray conversion differs by 1 level on some pixels.
    bgr = cv2.imread(str(tno / "baselines" / "SeAFusion" / "01.png"), cv2.IMREAD_COLOR)
    b, g, r = (bgr[..., k].astype(np.float64) for k in range(3))
    expected = np.floor(0.298936021293775 * r + 0.587043074451121 * g + 0.114020904255103 * b + 0.5)
    np.testing.assert_array_equal(to_gray(bgr), expected.astype(np.uint8))


def _ssim_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. SSIM written out window by window: 11×11 Gaussian (sigma 1.5), valid windows."""
    ax = np.arange(11) - 5
    w = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11].astype(float), y[i : i + 11, j : j + 11].astype(float)
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_against_direct_computation() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 52), dtype=np.uint8)
    y = cv2.GaussianBlur(x, (5, 5), 1.0)
    z = (255 - x // 2).astype(np.uint8)
    assert structural_similarity(x, x, x) == pytest.approx(2.0)  # SSIM(x, x) = 1 per source
    expected = _ssim_direct(y, x) + _ssim_direct(y, z)
    assert -1.0 < expected < 1.5  # far from the identical-image value
    assert structural_similarity(y, x, z) == pytest.approx(expected, rel=1e-9)


def test_fusion_metrics_rejects_bad_input() -> None:
    img = np.zeros((8, 8), np.uint8)
    with pytest.raises(MetricsError, match="sizes differ"):
        fusion_metrics(img, img, np.zeros((8, 9), np.uint8))
    with pytest.raises(MetricsError, match="uint8"):
        fusion_metrics(img.astype(np.float32), img, img)
    with pytest.raises(MetricsError, match="unknown metric"):
        fusion_metrics(img, img, img, ["NOPE"])


GT_BOX = [0.0, 0.0, 10.0, 10.0]


def _image(boxes: list[list[float]], labels: list[int], scores: list[float] | None = None) -> dict:
    entry = {"boxes": np.array(boxes, float).reshape(-1, 4), "labels": np.array(labels, np.int64)}
    return entry if scores is None else {**entry, "scores": np.array(scores, float)}


@pytest.mark.parametrize(
    ("dets", "scores", "map50", "map_"),
    [
        # a false positive ranked above the hit: precision 1/2 at every recall -> AP 0.5
        ([[50, 50, 60, 60], GT_BOX], [0.9, 0.8], 0.5, 0.5),
        # IoU 0.72 matches at thresholds 0.50..0.70 only: 5 of 10 -> mAP 0.5
        ([[0, 0, 10, 7.2]], [0.9], 1.0, 0.5),
    ],
)
def test_map_known_answers(dets: list, scores: list, map50: float, map_: float) -> None:
    result = detection_map([_image(dets, [0] * len(dets), scores)], [_image([GT_BOX], [0])], 1)
    assert (result["map50"], result["map"]) == pytest.approx((map50, map_))


def test_map_uses_101_recall_points_and_skips_classes_without_truth() -> None:
    # Two truths, one found: precision 1 up to recall 0.5 -> 51 of the 101 recall points.
    gt = _image([GT_BOX, [20, 20, 30, 30]], [0, 0])
    pred = _image([GT_BOX, [40, 40, 50, 50]], [0, 1], [0.9, 0.8])  # class 1 has no truth
    result = detection_map([pred], [gt], 2)
    assert result["map50"] == pytest.approx(51 / 101)
    assert result["ap50_per_class"][0] == pytest.approx(51 / 101) and np.isnan(result["ap50_per_class"][1])


def test_max_detections_cuts_per_image_and_class() -> None:
    pred = _image([[50, 50, 60, 60], GT_BOX], [0, 0], [0.9, 0.8])
    gt = _image([GT_BOX], [0])
    assert detection_map([pred], [gt], 1)["map50"] == pytest.approx(0.5)
    assert detection_map([pred], [gt], 1, max_detections=1)["map50"] == 0.0  # only the miss is kept


def test_map_perfect_and_empty() -> None:
    gt = {"boxes": np.array([[0, 0, 10, 10], [20, 20, 40, 50.0]]), "labels": np.array([0, 1])}
    perfect = {**gt, "scores": np.array([0.9, 0.8])}
    assert detection_map([perfect], [gt], 2)["map"] == pytest.approx(1.0)
    none = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, np.int64)}
    assert detection_map([none], [gt], 2)["map50"] == 0.0
    with pytest.raises(MetricsError, match="label outside"):
        detection_map([perfect], [{**gt, "labels": np.array([0, 7])}], 2)


def test_iou_hand_example() -> None:
    target = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 1, 0]])
    # rows = target class: class 0 at 3 pixels → predicted 0, 1, 0; class 1 at 2 → 1, 1;
    # class 2 at 2 → 2, 1; the 255 pixel is skipped.
    np.testing.assert_array_equal(confusion_matrix(pred, target, 3), [[2, 1, 0], [0, 2, 0], [0, 1, 1]])
    out = segmentation_iou(pred, target, 3)
    # IoU = TP / (row sum + column sum - TP): 2/(3+2-2), 2/(2+4-2), 1/(2+1-1)
    np.testing.assert_allclose(out["iou_per_class"], [2 / 3, 2 / 4, 1 / 2])
    assert out["miou"] == pytest.approx((2 / 3 + 0.5 + 0.5) / 3)
    absent = segmentation_iou(np.zeros((2, 2)), np.zeros((2, 2)), 2)
    assert absent["miou"] == 1.0 and np.isnan(absent["iou_per_class"][1])
