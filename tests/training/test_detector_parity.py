"""The CenterNet port against the ORIGINAL TF.js graph run by tfjs (Node.js, pure-JS CPU backend).

Reference outputs: tests/fixtures/detector/reference.npz, made by make_reference.py there (which
documents how to regenerate it); inputs are re-derived from the shared frames and checked against
the SHA-256 stored with the reference. Tolerances: both runtimes compute in float32 from the same
float16-stored weights, so only summation order differs; measured on these frames: scores and
heatmap ≤ 1.4e-6, boxes ≤ 3.1e-4 px, wh ≤ 2.6e-3 px (values up to 506 px). Asserted with ~10×
margin: scores/heatmap 1e-5, boxes 5e-3 px, wh 2e-2 px.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training.models.centernet import COCO_CLASSES, ROAD_CLASSES, CenterNetOutput, load_centernet

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "detector"
sys.path.insert(0, str(FIXTURES))
from make_reference import MODEL, reference_input, sha256  # noqa: E402

REFERENCE = np.load(FIXTURES / "reference.npz")
NAMES = [str(n) for n in REFERENCE["names"]]
SCORE_TOL, BOX_TOL_PX, WH_TOL_PX = 1e-5, 5e-3, 2e-2


@pytest.fixture(scope="module")
def model_path(data_dir: Path) -> Path:
    if not MODEL.is_file():
        pytest.skip(f"pretrained detector not found at {MODEL.resolve()}")
    return MODEL


@pytest.fixture(scope="module")
def inputs(data_dir: Path) -> dict[str, torch.Tensor]:
    """name -> [1,3,512,512] float RGB 0..255, the same bytes tfjs was given."""
    frames = {}
    for name, source, digest in zip(NAMES, REFERENCE["sources"], REFERENCE["input_sha256"], strict=True):
        pixels = reference_input(str(source))
        assert sha256(pixels) == digest, f"{name}: input changed, rerun make_reference.py"
        frames[name] = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    return frames


@pytest.fixture(scope="module")
def outputs(model_path: Path, inputs: dict[str, torch.Tensor]) -> dict[str, CenterNetOutput]:
    model = load_centernet(model_path)
    with torch.no_grad():
        return {name: model(x) for name, x in inputs.items()}


def match_detections(ours: np.ndarray, ref: np.ndarray, ref_ids: np.ndarray) -> None:
    """Each reference detection clear of the top-K cut has ours: same class, box and score.

    Matched by class and nearest box, so scores tied within float noise may swap ranks.
    ``ref_ids`` maps the reference's class ids onto ours (-1: class not decoded by ours).
    """
    keep = (ref[:, 4] > ref[:, 4].min() + SCORE_TOL) & (ref_ids >= 0)
    assert keep.sum() >= 10
    for row, cls in zip(ref[keep], ref_ids[keep], strict=True):
        same_class = ours[ours[:, 5] == cls]
        nearest = same_class[np.abs(same_class[:, :4] - row[:4]).max(axis=1).argmin()]
        np.testing.assert_allclose(nearest[:4], row[:4], rtol=0, atol=BOX_TOL_PX)
        np.testing.assert_allclose(nearest[4], row[4], rtol=0, atol=SCORE_TOL)


@pytest.mark.parametrize("index", range(len(NAMES)), ids=NAMES)
def test_detections_match_tfjs(outputs: dict[str, CenterNetOutput], index: int) -> None:
    ours = outputs[NAMES[index]].detections[0].numpy()
    ref = REFERENCE["detections"][index]
    assert ours.shape == ref.shape == (100, 6)
    match_detections(ours, ref, ref[:, 5].astype(int))
    np.testing.assert_allclose(ours[:, 4], ref[:, 4], rtol=0, atol=SCORE_TOL)  # sorted scores


@pytest.mark.parametrize("index", range(len(NAMES)), ids=NAMES)
def test_heatmap_and_wh_match_tfjs(outputs: dict[str, CenterNetOutput], index: int) -> None:
    out = outputs[NAMES[index]]
    heat = out.keypoints[0].numpy()  # [80,128,128]
    for axis, key in ((0, "heat_max_over_classes"), ((1, 2), "heat_max_over_pixels")):
        np.testing.assert_allclose(heat.max(axis=axis), REFERENCE[key][index], rtol=0, atol=SCORE_TOL)
    wh = out.wh[0].permute(1, 2, 0).numpy()[::4, ::4]
    np.testing.assert_allclose(wh, REFERENCE["wh_every_4th"][index], rtol=0, atol=WH_TOL_PX)


def test_road_classes_decode_the_same_detections(model_path: Path, inputs: dict[str, torch.Tensor]) -> None:
    """Decoding only the road classes keeps the graph's road detections, classes renumbered."""
    model = load_centernet(model_path, ROAD_CLASSES)
    to_road = np.array([ROAD_CLASSES.index(c) if c in ROAD_CLASSES else -1 for c in COCO_CLASSES])
    index = NAMES.index("m3fd_02195")  # cars, bus, trucks, people
    with torch.no_grad():
        out = model(inputs[NAMES[index]])
    assert out.keypoints.shape[1] == len(ROAD_CLASSES)
    ours = out.detections[0].numpy()
    assert set(np.unique(ours[:, 5]).astype(int)) <= set(range(len(ROAD_CLASSES)))
    ref = REFERENCE["detections"][index]
    match_detections(ours, ref, to_road[ref[:, 5].astype(int)])
