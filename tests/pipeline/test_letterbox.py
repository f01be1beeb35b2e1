"""Letterbox vs stretch: placement maths, and the contract model's outputs back in visible pixels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_node.pipeline import FusionPipeline, PipelineConfig, PipelineError
from fusion_node.pipeline.letterbox import Placement

WIDE = (180, 320)  # 16:9 visible frames into the contract model's 64×96 (2:3) input


def test_letterbox_keeps_the_aspect_ratio_and_centres_with_black_bars() -> None:
    placement = Placement.of(WIDE, (64, 96), "letterbox")
    assert (placement.x0, placement.y0, placement.w, placement.h) == (0, 5, 96, 54)  # scale 0.3
    image = np.full((*WIDE, 3), 200, np.uint8)
    model_in = placement.to_input(image)
    assert model_in.shape == (64, 96, 3)
    assert not model_in[:5].any() and not model_in[59:].any() and (model_in[5:59] == 200).all()
    assert Placement.of(WIDE, (64, 96), "stretch") == Placement(WIDE, (64, 96), 0, 0, 96, 64)


def test_an_input_box_maps_back_to_visible_pixels() -> None:
    box_in = np.array([[9.6, 12.8, 38.4, 38.4]], np.float32)  # the contract box at 96×64
    letterboxed = Placement.of(WIDE, (64, 96), "letterbox").boxes_from_input(box_in)
    np.testing.assert_allclose(letterboxed, [[32.0, 26.0, 128.0, 111.333]], atol=1e-2)  # (in - offset) / 0.3
    stretched = Placement.of(WIDE, (64, 96), "stretch").boxes_from_input(box_in)
    np.testing.assert_allclose(stretched, [[32.0, 36.0, 128.0, 108.0]], atol=1e-2)  # relative box × 320/180


@pytest.mark.parametrize("fit", ["stretch", "letterbox"])
def test_outputs_are_in_visible_geometry_with_either_fit(
    contract_model: Callable[..., Path], fit: str
) -> None:
    """The contract model segments hot IR pixel by pixel: a misplaced mapping would shift the mask."""
    yy, xx = np.mgrid[: WIDE[0], : WIDE[1]]
    ir = np.where((xx - 200) ** 2 + (yy - 60) ** 2 < 30**2, 255, 0).astype(np.uint8)  # one hot disc
    visible = np.full((*WIDE, 3), 40, np.uint8)
    config = PipelineConfig(model_path=contract_model(), threads=1, fit=fit)  # type: ignore[arg-type]
    result = FusionPipeline(config).process(ir, visible)
    assert result.fused.shape == (*WIDE, 3) and result.segmentation is not None
    hot = ir > 127
    seg = result.segmentation == 1
    assert np.logical_and(seg, hot).sum() / np.logical_or(seg, hot).sum() > 0.8
    fused = cv2.cvtColor(result.fused, cv2.COLOR_BGR2GRAY).astype(int)
    assert abs(fused[60, 200] - 255) < 30 and abs(fused[150, 40] - 40) < 30
    (det,) = result.detections
    expected = {"stretch": (32.0, 36.0, 128.0, 108.0), "letterbox": (32.0, 26.0, 128.0, 111.333)}[fit]
    np.testing.assert_allclose(det.box, expected, atol=0.01)


def test_an_unknown_fit_is_refused(contract_model: Callable[..., Path]) -> None:
    with pytest.raises(PipelineError, match="fit 'crop' is unknown; use one of stretch, letterbox"):
        FusionPipeline(PipelineConfig(model_path=contract_model(), fit="crop"))  # type: ignore[arg-type]
