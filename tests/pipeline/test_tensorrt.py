"""TensorRT backend: pure helpers here; the engine itself only where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fusion_node.pipeline import ModelError, open_backend
from fusion_node.pipeline.backends.tensorrt import engine_cache_key, optimisation_shapes, uses_tensor_api

HAVE_TRT = all(importlib.util.find_spec(m) is not None for m in ("tensorrt", "pycuda"))


def test_cache_key_separates_model_version_gpu_and_precision() -> None:
    key = engine_cache_key("ab" * 32, "10.3.0", "NVIDIA Jetson Orin (nvgpu)", fp16=True)
    assert key == "abababababababab_trt10.3.0_nvidia-jetson-orin-nvgpu_fp16.engine"
    variants = {
        engine_cache_key("cd" * 32, "10.3.0", "NVIDIA Jetson Orin (nvgpu)", fp16=True),
        engine_cache_key("ab" * 32, "8.6.1", "NVIDIA Jetson Orin (nvgpu)", fp16=True),
        engine_cache_key("ab" * 32, "10.3.0", "NVIDIA H100", fp16=True),
        engine_cache_key("ab" * 32, "10.3.0", "NVIDIA Jetson Orin (nvgpu)", fp16=False),
    }
    assert key not in variants and len(variants) == 4


def test_api_branch_by_major_version() -> None:
    assert not uses_tensor_api("8.6.1")
    assert uses_tensor_api("10.0.1") and uses_tensor_api("11.4.1")
    with pytest.raises(ModelError, match="too old"):
        uses_tensor_api("7.2.3")


def test_profile_brackets_the_input_size() -> None:
    assert optimisation_shapes((480, 640), 32) == ((32, 32), (480, 640), (960, 1280))


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt and pycuda are installed here")
def test_missing_tensorrt_is_a_clear_error(contract_model: Callable[..., Path]) -> None:
    with pytest.raises(ModelError, match=r"tensorrt/pycuda not installed.*onnxruntime"):
        open_backend(contract_model(), kind="tensorrt")


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAVE_TRT, reason="needs the tensorrt and pycuda packages and an NVIDIA GPU")
def test_engine_matches_onnxruntime(contract_model: Callable[..., Path], tmp_path: Path) -> None:
    path = contract_model()
    ir = np.random.default_rng(0).integers(0, 256, (1, 1, 64, 96), dtype=np.uint8)
    visible = np.random.default_rng(1).integers(0, 256, (1, 3, 64, 96), dtype=np.uint8)
    expected = open_backend(path).infer(ir, visible)
    engine = open_backend(path, kind="tensorrt", cache_dir=tmp_path, fp16=False)
    for name, value in engine.infer(ir, visible).items():
        np.testing.assert_allclose(value, expected[name], atol=1e-4, err_msg=name)
    assert len(list(tmp_path.glob("*.engine"))) == 1
    open_backend(path, kind="tensorrt", cache_dir=tmp_path, fp16=False)  # cache hit: no second file
    assert len(list(tmp_path.glob("*.engine"))) == 1
