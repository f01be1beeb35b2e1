"""Fusion metrics against the reference MATLAB tables, mAP against pycocotools, IoU by hand."""

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


def _synthetic_detections(seed: int) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for img in range(12):
        n_gt = 0 if img % 5 == 0 else int(rng.integers(1, 7))  # some images without GT
        xy = rng.uniform(0, 300, (n_gt, 2))
        gt_boxes = np.concatenate([xy, xy + rng.uniform(10, 120, (n_gt, 2))], axis=1)
        gt_labels = rng.integers(0, 4, n_gt)
        jitter = rng.normal(0, 6, (n_gt, 4))
        keep = rng.random(n_gt) < 0.8  # missed objects
        n_fp = int(rng.integers(0, 4))
        fp_xy = rng.uniform(0, 300, (n_fp, 2))
        fp = np.concatenate([fp_xy, fp_xy + rng.uniform(10, 80, (n_fp, 2))], axis=1)
        boxes = np.concatenate([(gt_boxes + jitter)[keep], fp])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.concatenate([gt_labels[keep], rng.integers(0, 4, n_fp)])
        preds.append({"boxes": boxes, "scores": rng.random(len(boxes)), "labels": labels})
        gts.append({"boxes": gt_boxes, "labels": gt_labels})
    return preds, gts


def _pycocotools_map(preds: list[dict], gts: list[dict], num_classes: int) -> tuple[float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    images = [{"id": i + 1, "width": 640, "height": 480} for i in range(len(gts))]
    anns = [
        {"id": len(images) * 100 + k, "image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b),
         "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0}
        for i, g in enumerate(gts) for k, (b, c) in enumerate(zip(g["boxes"], g["labels"], strict=True))
    ]  # fmt: skip
    for k, a in enumerate(anns):
        a["id"] = k + 1
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns,
                    "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}  # fmt: skip
    coco.createIndex()
    dets = [
        {"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "score": float(s)}
        for i, p in enumerate(preds) for b, s, c in zip(p["boxes"], p["scores"], p["labels"], strict=True)
    ]  # fmt: skip
    ev = COCOeval(coco, coco.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[1]), float(ev.stats[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_matches_pycocotools(seed: int) -> None:
    pytest.importorskip("pycocotools")
    preds, gts = _synthetic_detections(seed)
    num_classes = 5  # class 4 never appears in GT: must be skipped, not counted as 0
    ours = detection_map(preds, gts, num_classes)
    ref50, ref = _pycocotools_map(preds, gts, num_classes)
    assert 0.05 < ours["map"] < ours["map50"] < 1.0
    assert ours["map50"] == pytest.approx(ref50, abs=1e-4)
    assert ours["map"] == pytest.approx(ref, abs=1e-4)
    assert np.isnan(ours["ap50_per_class"][4])


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
