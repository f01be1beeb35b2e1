"""Model loading and the contract checks, with real ONNX Runtime sessions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto

from fusion_node.pipeline import ModelError, ModelInfo, default_model_path, open_backend
from fusion_node.pipeline.backends.onnxruntime import OrtBackend
from fusion_node.pipeline.model import MODEL_ENV

REPO = Path(__file__).resolve().parents[2]

ModelFactory = Callable[..., Path]


def test_backend_runs_the_contract_model(contract_model: ModelFactory) -> None:
    backend = open_backend(contract_model(), kind="onnxruntime", threads=1)
    assert backend.name == "onnxruntime:CPUExecutionProvider"
    ir = np.full((1, 1, 64, 96), 200, np.uint8)
    outputs = backend.infer(ir, np.zeros((1, 3, 64, 96), np.uint8))
    assert set(outputs) == {"fused", "boxes", "scores", "classes", "num_detections", "segmentation"}
    assert outputs["fused"].min() == 200 and outputs["segmentation"].min() == 1
    info = ModelInfo.from_metadata(backend.metadata, Path("m.onnx"))
    assert info.class_names == ("person", "car") and info.input_size == (64, 96)
    assert info.detection_trained and info.max_detections == 8 and info.nms_iou_threshold == 0.6


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nope\.onnx does not exist.*fusion-export.*model_path"):
        open_backend(tmp_path / "nope.onnx")


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07this is not protobuf" * 10)
    with pytest.raises(ModelError, match=r"cannot load .*bad\.onnx.*corrupt.*fusion-export"):
        open_backend(bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ir_name": "thermal"}, r"input 'ir' is missing \(has \['thermal', 'visible'\]\)"),
        ({"ir_dtype": TensorProto.FLOAT}, "input 'ir' is float32 rank 4, expected uint8 rank 4"),
        ({"omit_outputs": ("segmentation",)}, "output 'segmentation' is missing"),
    ],
)
def test_wrong_contract(contract_model: ModelFactory, options: dict[str, object], message: str) -> None:
    path = contract_model(**options)
    with pytest.raises(ModelError, match=message) as caught:
        open_backend(path)
    assert str(path) in str(caught.value) and "fusion-export" in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"class_names": None}, "'class_names' is missing"),
        ({"class_names": "person,car"}, "class_names='person,car' is not a JSON list of strings"),
        ({"seg_class_names": "__import__('os').system('false')"}, "not a JSON list"),
        ({"detection_trained": "yes"}, "'true' or 'false'"),
        ({"input_height": "-64"}, "a positive int"),
        ({"contract": "fusion_node/2"}, "contract 'fusion_node/2' is not 'fusion_node/1'"),
        ({"input_width": "100"}, "not a multiple of size_divisor 32"),
    ],
)
def test_bad_metadata(contract_model: ModelFactory, overrides: dict[str, str | None], message: str) -> None:
    path = contract_model(metadata=overrides)
    metadata = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    with pytest.raises(ModelError, match=message) as caught:
        ModelInfo.from_metadata(metadata, path)
    assert str(path) in str(caught.value)


def test_device_choice(contract_model: ModelFactory, caplog: pytest.LogCaptureFixture) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the CPU fallback cannot be observed")
    with pytest.raises(ModelError, match="onnxruntime-gpu"):
        OrtBackend(contract_model(), device="cuda")
    with caplog.at_level(logging.INFO):
        backend = OrtBackend(contract_model(), device="auto")
    assert backend.name.endswith("CPUExecutionProvider")
    assert "running on CPU" in caplog.text
    with pytest.raises(ModelError, match="unknown backend 'openvino'"):
        open_backend(contract_model(), kind="openvino")  # type: ignore[arg-type]


def test_default_model_path(
    monkeypatch: pytest.MonkeyPatch, contract_model: ModelFactory, tmp_path: Path
) -> None:
    monkeypatch.setenv(MODEL_ENV, str(contract_model()))
    assert default_model_path() == contract_model()
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelError, match=r"missing\.onnx.*fusion-export.*model_path"):
        default_model_path()

