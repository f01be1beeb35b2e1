"""The committed default model (models/fusion_rt.onnx) through the runtime, on the bundled sample."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sample_truth import best_match, mask_against_boxes, sample_truth

from fusion_node.pipeline import FusionPipeline, PipelineConfig

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "fusion_rt.onnx"
SAMPLE = REPO / "fusion_node" / "sample"


@pytest.mark.skipif(not MODEL.is_file(), reason="no default model exported into models/ yet")
def test_shipped_model_fuses_the_sample_and_detects_its_people() -> None:
    pipeline = FusionPipeline(PipelineConfig(model_path=MODEL))
    info = pipeline.info
    assert info.model_name == "fusion_rt" and "trained with box supervision" in info.description
    assert (info.detection_trained, info.segmentation_trained) == (True, True)
    assert info.class_names == ("person", "bicycle", "car", "motorcycle", "bus", "truck")
    ir = cv2.imread(str(SAMPLE / "ir" / "00036N.jpg"), cv2.IMREAD_GRAYSCALE)
    visible = cv2.imread(str(SAMPLE / "vi" / "00036N.jpg"), cv2.IMREAD_COLOR)
    result = pipeline.process(ir, visible)
    assert result.fused.shape == visible.shape and result.fused.dtype == np.uint8
    # The pretrained detector finds the large pedestrian the MSRS labels mark (IoU >= 0.5).
    truth = sample_truth("00036N")
    found = [(d.class_name, d.box) for d in result.detections]
    assert best_match(found, truth) >= 0.5, found
    # The box-supervised head's person pixels lie on the labelled people (0.96 measured) and cover a
    # good part of the large pedestrian's box (0.28: a body fills a fraction of its box).
    mask = result.segmentation
    assert mask is not None and mask.shape == visible.shape[:2] and mask.dtype == np.uint8
    on_people, on_largest = mask_against_boxes(mask, info.seg_class_names.index("person"), truth, "person")
    assert on_people > 0.8 and on_largest > 0.15, (on_people, on_largest)
    # A fusion, not a copy: the fused luminance follows the visible image and carries clearly more
    # of the IR than the visible image itself does (on this night scene they hardly correlate).
    fused_y = cv2.cvtColor(result.fused, cv2.COLOR_BGR2GRAY).astype(np.float64).ravel()
    vis_y = cv2.cvtColor(visible, cv2.COLOR_BGR2GRAY).astype(np.float64).ravel()
    ir_flat = ir.astype(np.float64).ravel()
    assert np.corrcoef(fused_y, vis_y)[0, 1] > 0.5
    assert np.corrcoef(fused_y, ir_flat)[0, 1] > np.corrcoef(vis_y, ir_flat)[0, 1] + 0.2
