"""The CenterNet port exported alone to ONNX, run by ONNX Runtime, against the PyTorch port."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.models.centernet import (
    ROAD_CLASSES,
    CenterNetOutput,
    export_centernet_onnx,
    letterbox,
    load_centernet,
)
from training.models.tfjs import PretrainedModelError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "detector"))
from make_reference import FRAMES, MODEL, REPO

SIZE = 416  # not the graph's 512: the export's input size is an option


@pytest.fixture(scope="module")
def model_path(data_dir: Path) -> Path:
    if not MODEL.is_file():
        pytest.skip(f"pretrained detector not found at {MODEL.resolve()}")
    return MODEL


def test_onnx_matches_the_pytorch_port(model_path: Path, tmp_path: Path) -> None:
    model = load_centernet(model_path, ROAD_CLASSES)
    onnx_path = export_centernet_onnx(model, tmp_path / "centernet.onnx", SIZE)
    frames = [cv2.imread(str(REPO / FRAMES[name]))[..., ::-1] for name in ("m3fd_02195", "msrs_00016N")]
    batch = np.stack([letterbox(np.ascontiguousarray(f), SIZE)[0] for f in frames]).transpose(0, 3, 1, 2)
    images = batch.astype(np.float32)  # [2,3,416,416] RGB 0..255, batch 2 through the dynamic axis

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(CenterNetOutput._fields)
    got = dict(zip(CenterNetOutput._fields, session.run(None, {"images": images}), strict=True))
    with torch.no_grad():
        want = model(torch.from_numpy(images))._asdict()

    assert got["detections"].shape == (2, 100, 6) and got["keypoints"].shape == (2, 6, SIZE // 4, SIZE // 4)
    np.testing.assert_allclose(got["keypoints"], want["keypoints"].numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(got["wh"], want["wh"].numpy(), rtol=1e-4, atol=1e-2)
    for ours, theirs in zip(got["detections"], want["detections"].numpy(), strict=True):
        confident = theirs[:, 4] > 0.1  # clear of float-noise ties among the weak peaks
        assert confident.sum() >= 3
        np.testing.assert_array_equal(ours[confident, 5], theirs[confident, 5])
        np.testing.assert_allclose(ours[confident, :5], theirs[confident, :5], rtol=0, atol=1e-2)


def test_export_refuses_a_size_off_the_stride(model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(PretrainedModelError, match="multiples of 32"):
        export_centernet_onnx(load_centernet(model_path), tmp_path / "x.onnx", 400)
