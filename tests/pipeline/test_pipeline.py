"""The full pipeline on the contract model (real ONNX Runtime) and real image pairs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_node.pipeline import (
    AgcConfig,
    FusionPipeline,
    ImageError,
    PipelineConfig,
    PipelineError,
    RegistrationError,
    colorize,
    overlay,
    palette,
)

ModelFactory = Callable[..., Path]
RNG = np.random.default_rng(3)
BOX = np.array([0.1, 0.2, 0.4, 0.6])  # make_contract_model's default box: class 1 "car", score 0.9


def pipeline(model: Path, **options: object) -> FusionPipeline:
    return FusionPipeline(PipelineConfig(model_path=model, threads=1, **options))  # type: ignore[arg-type]


def test_native_size_outputs_are_exact(contract_model: ModelFactory) -> None:
    ir = RNG.integers(0, 256, (64, 96), dtype=np.uint8)
    visible = RNG.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    result = pipeline(contract_model()).process(ir, visible)
    np.testing.assert_array_equal(result.fused, np.maximum(ir[..., None], visible))
    assert result.segmentation is not None
    np.testing.assert_array_equal(result.segmentation, (ir > 127).astype(np.uint8))
    (det,) = result.detections
    assert (det.class_id, det.class_name, det.score) == (1, "car", pytest.approx(0.9))
    np.testing.assert_allclose(det.box, BOX * [96, 64, 96, 64], atol=1e-4)
    assert set(result.timings_ms) == {"preprocess", "inference", "postprocess", "total"}


def test_outputs_are_mapped_back_to_the_visible_geometry(contract_model: ModelFactory) -> None:
    ir = RNG.integers(0, 256, (150, 200), dtype=np.uint8)
    visible = RNG.integers(0, 256, (150, 200, 3), dtype=np.uint8)
    result = pipeline(contract_model()).process(ir, visible)

    ir_in = cv2.resize(ir, (96, 64), interpolation=cv2.INTER_AREA)
    visible_in = cv2.resize(visible, (96, 64), interpolation=cv2.INTER_AREA)
    expected = cv2.resize(
        np.maximum(ir_in[..., None], visible_in), (200, 150), interpolation=cv2.INTER_LINEAR
    )
    np.testing.assert_array_equal(result.fused, expected)
    seg = cv2.resize((ir_in > 127).astype(np.uint8), (200, 150), interpolation=cv2.INTER_NEAREST)
    assert result.segmentation is not None
    np.testing.assert_array_equal(result.segmentation, seg)
    np.testing.assert_allclose(result.detections[0].box, BOX * [200, 150, 200, 150], atol=1e-3)


def test_input_size_override(contract_model: ModelFactory) -> None:
    fusion = pipeline(contract_model(), input_size=(32, 64))
    result = fusion.process(np.zeros((100, 120), np.uint8), np.zeros((100, 120, 3), np.uint8))
    np.testing.assert_allclose(result.detections[0].box, BOX * [120, 100, 120, 100], atol=1e-3)
    with pytest.raises(PipelineError, match="multiples of the model's size_divisor 32"):
        pipeline(contract_model(), input_size=(50, 64))


def test_boxes_are_clipped(contract_model: ModelFactory) -> None:
    model = contract_model(boxes_rel=((-0.2, 0.5, 1.3, 1.1, 0.8, 0),))
    (det,) = pipeline(model).process(np.zeros((60, 80), np.uint8), np.zeros((60, 80, 3), np.uint8)).detections
    assert det.box == pytest.approx((0.0, 30.0, 80.0, 60.0), abs=1e-3)
    assert det.class_name == "person"


def test_untrained_heads_are_not_published(contract_model: ModelFactory) -> None:
    pair = np.full((64, 96), 255, np.uint8), np.zeros((64, 96, 3), np.uint8)
    no_det = pipeline(contract_model(detection_trained=False)).process(*pair)
    assert no_det.detections == [] and no_det.segmentation is not None
    no_seg = pipeline(contract_model(segmentation_trained=False)).process(*pair)
    assert no_seg.segmentation is None and len(no_seg.detections) == 1


def test_thresholds_can_change(contract_model: ModelFactory) -> None:
    boxes = (
        (0.10, 0.10, 0.50, 0.50, 0.9, 0),
        (0.12, 0.12, 0.52, 0.52, 0.8, 0),  # overlaps the first (IoU ≈ 0.82), same class
        (0.12, 0.12, 0.52, 0.52, 0.6, 1),  # same place, other class: class-wise NMS keeps it
        (0.70, 0.70, 0.90, 0.90, 0.2, 1),
    )
    fusion = pipeline(contract_model(boxes_rel=boxes), nms_iou_threshold=0.9)
    pair = np.zeros((64, 96), np.uint8), np.zeros((64, 96, 3), np.uint8)
    assert [d.score for d in fusion.process(*pair).detections] == pytest.approx([0.9, 0.8, 0.6])
    fusion.set_thresholds(nms_iou=0.5)  # stricter than the graph's 0.6: NMS runs again
    kept = fusion.process(*pair).detections
    assert [d.class_id for d in kept] == [0, 1] and [d.score for d in kept] == pytest.approx([0.9, 0.6])
    fusion.set_thresholds(score=0.1)
    assert len(fusion.process(*pair).detections) == 3
    fusion.set_thresholds(score=0.95)
    assert fusion.process(*pair).detections == []
    with pytest.raises(PipelineError, match=r"score threshold 1.5 must be in \[0, 1\]"):
        fusion.set_thresholds(score=1.5, nms_iou=0.4)
    assert fusion.thresholds == (0.95, 0.5)  # a rejected change changes nothing


def test_raw_thermal_and_mono_visible(contract_model: ModelFactory) -> None:
    thermal = np.tile(np.linspace(3000, 9000, 96), (64, 1)).astype(np.uint16)
    result = pipeline(contract_model(), agc=AgcConfig(smoothing=0.0)).process(
        thermal, np.zeros((64, 96), np.uint8)
    )
    assert result.fused.shape == (64, 96, 3)
    assert result.segmentation is not None
    hot = result.segmentation[32]
    assert hot[:40].max() == 0 and hot[-40:].min() == 1  # AGC put the warm half above 127


@pytest.mark.parametrize(
    ("ir_shape", "visible_shape"),
    [((0, 0), (0, 0, 3)), ((64, 96), (0, 96, 3)), ((64, 0), (64, 96, 3)), ((64, 96), (64, 96, 0))],
)
def test_empty_images_are_image_errors_not_opencv_errors(
    contract_model: ModelFactory, ir_shape: tuple[int, ...], visible_shape: tuple[int, ...]
) -> None:
    fusion = pipeline(contract_model())
    with pytest.raises(ImageError, match=r"image is empty|visible image must be"):
        fusion.process(np.zeros(ir_shape, np.uint8), np.zeros(visible_shape, np.uint8))
    good = fusion.process(np.zeros((64, 96), np.uint8), np.zeros((64, 96, 3), np.uint8))
    assert good.fused.shape == (64, 96, 3)  # and the pipeline goes on


def test_registration_in_the_pipeline(contract_model: ModelFactory) -> None:
    ir = np.zeros((32, 48), np.uint8)
    ir[8:16, 12:24] = 255
    visible = np.zeros((64, 96, 3), np.uint8)
    with pytest.raises(RegistrationError, match="48×32 but visible is 96×64"):
        pipeline(contract_model()).process(ir, visible)
    result = pipeline(contract_model(), homography=[2, 0, 0, 0, 2, 0, 0, 0, 1]).process(ir, visible)
    assert result.segmentation is not None
    assert result.segmentation[20:30, 28:44].min() == 1 and result.segmentation[40:, :].max() == 0


def test_real_msrs_pair(contract_model: ModelFactory, data_dir: Path) -> None:
    ir = cv2.imread(str(data_dir / "msrs_samples/ir/00016N.png"), cv2.IMREAD_GRAYSCALE)
    visible = cv2.imread(str(data_dir / "msrs_samples/vi/00016N.png"), cv2.IMREAD_COLOR)
    assert ir is not None and visible is not None, "unreadable sample images"
    fusion = pipeline(contract_model(input_size=(480, 640)))
    result = fusion.process(ir, visible)
    np.testing.assert_array_equal(result.fused, np.maximum(ir[..., None], visible))
    assert result.segmentation is not None and result.segmentation.shape == ir.shape
    np.testing.assert_allclose(result.detections[0].box, BOX * [640, 480, 640, 480], atol=1e-3)
    drawn = overlay(result.fused, result.segmentation, result.detections, n_classes=2)
    assert drawn.shape == visible.shape
    cold = result.segmentation == 0
    np.testing.assert_array_equal(
        drawn[cold & (np.arange(640) > 300)], result.fused[cold & (np.arange(640) > 300)]
    )


def test_colorize_and_overlay() -> None:
    colours = palette(4)
    assert colours[0].tolist() == [0, 0, 0] and len({tuple(c) for c in colours.tolist()}) == 4
    mask = np.array([[0, 1], [2, 3]], np.uint8)
    np.testing.assert_array_equal(colorize(mask, 4), colours[mask])
    with pytest.raises(PipelineError, match="class 3 but n_classes is 2"):
        colorize(mask, 2)
    fused = np.full((2, 2, 3), 100, np.uint8)
    drawn = overlay(fused, mask, [])
    assert (drawn[0, 0] == 100).all() and not (drawn[1, 1] == 100).all()
    assert (fused == 100).all()  # the input is not drawn on
    blended = np.rint(0.55 * 100 + 0.45 * colours[mask].astype(np.float64))
    np.testing.assert_array_equal(drawn[mask > 0], blended[mask > 0])  # labelled pixels: the blend
    # The colour mask a caller has already (the node publishes it too) gives the same drawing.
    np.testing.assert_array_equal(overlay(fused, mask, [], coloured=colorize(mask, 4)), drawn)


def test_import_does_not_pull_torch() -> None:
    code = "import sys, fusion_node.pipeline; print('torch' in sys.modules, 'rclpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
