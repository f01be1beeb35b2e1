"""`device: cuda:N`: parsing, the ONNX Runtime providers it builds, and clear errors without CUDA."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import pytest

from fusion_node.pipeline import FusionPipeline, ModelError, PipelineConfig
from fusion_node.pipeline.backends import Device, open_backend, parse_device
from fusion_node.pipeline.backends.onnxruntime import OrtBackend, session_providers

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
HAVE_CUDA = CUDA in ort.get_available_providers()


@pytest.mark.parametrize(
    ("text", "device"),
    [
        ("cpu", Device("cpu")),
        ("auto", Device("auto")),
        ("cuda", Device("cuda", 0)),
        ("cuda:0", Device("cuda", 0)),
        ("cuda:3", Device("cuda", 3)),
    ],
)
def test_parse_device(text: str, device: Device) -> None:
    assert parse_device(text) == device


@pytest.mark.parametrize(
    "text", ["gpu", "cuda:", "cuda:-1", "cuda:1x", "cpu:1", "auto:0", "CUDA:1", " cuda", ""]
)
def test_unknown_device_names_the_forms(text: str) -> None:
    with pytest.raises(ModelError, match=r"unknown device .*cpu, auto, cuda, cuda:N"):
        parse_device(text)


def test_providers_select_the_gpu_by_device_id() -> None:
    both = [CUDA, CPU]
    assert session_providers("cuda:2", both) == [(CUDA, {"device_id": 2}), CPU]
    assert session_providers("cuda", both) == [(CUDA, {"device_id": 0}), CPU]
    assert session_providers("auto", both) == [(CUDA, {"device_id": 0}), CPU]
    assert session_providers("cpu", both) == [CPU]
    assert session_providers("auto", [CPU]) == [CPU]
    with pytest.raises(ModelError, match=r"'cuda:1' but this onnxruntime only has \['CPU.*onnxruntime-gpu"):
        session_providers("cuda:1", [CPU])


def test_real_session_accepts_the_cuda_provider_options(contract_model: Callable[..., Path]) -> None:
    """ONNX Runtime takes the (name, options) form as built; without CUDA it falls back to CPU,
    which is why OrtBackend checks the provider a session really got."""
    providers = session_providers("cuda:1", [CUDA, CPU])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDAExecutionProvider is not in available provider names"
        session = ort.InferenceSession(str(contract_model()), providers=providers)
    if HAVE_CUDA:
        assert session.get_provider_options()[CUDA]["device_id"] == "1"
    else:
        assert session.get_providers() == [CPU]


@pytest.mark.skipif(HAVE_CUDA, reason="this onnxruntime has CUDA: the error cannot be observed")
def test_cuda_without_onnxruntime_gpu_is_a_clear_error(contract_model: Callable[..., Path]) -> None:
    with pytest.raises(ModelError, match=r"device 'cuda:1' but this onnxruntime only has.*onnxruntime-gpu"):
        OrtBackend(contract_model(), device="cuda:1")
    with pytest.raises(ModelError, match="unknown device 'gpu'"):
        FusionPipeline(PipelineConfig(model_path=contract_model(), device="gpu"))
    assert FusionPipeline(PipelineConfig(model_path=contract_model(), device="cpu")).backend_name == (
        f"onnxruntime:{CPU}"
    )


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
def test_cuda_device_runs_on_that_gpu(contract_model: Callable[..., Path]) -> None:
    backend = OrtBackend(contract_model(), device="cuda:0")
    assert backend.name == f"onnxruntime:{CUDA}"


def test_tensorrt_checks_the_device_before_needing_tensorrt(contract_model: Callable[..., Path]) -> None:
    with pytest.raises(ModelError, match="unknown device 'gpu1'"):
        open_backend(contract_model(), kind="tensorrt", device="gpu1")
