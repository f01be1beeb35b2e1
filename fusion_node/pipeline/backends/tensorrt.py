"""TensorRT backend: builds an engine from the contract .onnx once, caches it, runs it with pycuda.

TensorRT 10 removed the binding API that 8.x code uses; `uses_tensor_api` picks the name-based
tensor API (num_io_tensors, set_input_shape, set_tensor_address, execute_async_v3) on 10+ and the
binding API (set_binding_shape, execute_async_v2) on 8.x. `tensorrt` and `pycuda` are imported
lazily: they exist only on NVIDIA machines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from fusion_node.pipeline.backends.device import parse_device
from fusion_node.pipeline.errors import ModelError
from fusion_node.pipeline.model import CONTRACT_INPUTS, CONTRACT_OUTPUTS, ModelInfo, check_io, require_file

_log = logging.getLogger(__name__)
_WORKSPACE_BYTES = 1 << 30


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/fusion_node/engines (~/.cache/... when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fusion_node" / "engines"


def uses_tensor_api(trt_version: str) -> bool:
    """True for TensorRT 10+ (name-based tensor API), False for 8.x (binding API)."""
    major = int(trt_version.split(".")[0])
    if major < 8:
        raise ModelError(f"TensorRT {trt_version} is too old; install TensorRT 8.6 or 10+")
    return major >= 10


def engine_cache_key(model_sha256: str, trt_version: str, gpu_name: str, *, fp16: bool) -> str:
    """File name of the cached engine: an engine is valid only for this model, TensorRT and GPU."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower()
    return f"{model_sha256[:16]}_trt{trt_version}_{gpu}_{'fp16' if fp16 else 'fp32'}.engine"


def optimisation_shapes(input_size: tuple[int, int], divisor: int) -> tuple[tuple[int, int], ...]:
    """(min, opt, max) H×W of the engine profile: around the model's input size, divisor-aligned."""
    height, width = input_size
    return (divisor, divisor), (height, width), (2 * height, 2 * width)


def _contract_dtype(name: str, dtype: np.dtype) -> np.dtype:
    """TensorRT 8.x has no int64 I/O and stores int64 tensors as int32; `infer` widens them back."""
    wanted = {**CONTRACT_INPUTS, **CONTRACT_OUTPUTS}.get(name, (dtype, 0))[0]
    return wanted if (dtype, wanted) == (np.dtype(np.int32), np.dtype(np.int64)) else dtype


def _import_tensorrt() -> tuple[Any, Any]:
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as err:
        raise ModelError(
            f"tensorrt/pycuda not installed ({err}); install NVIDIA TensorRT's Python package and "
            "pycuda, or use backend 'onnxruntime'"
        ) from err
    return trt, cuda


class TensorRTBackend:
    """Runs a contract model as a TensorRT engine.

    Args:
        engine_or_onnx_path: a .onnx (built into an engine, cached) or a serialized engine
            built by this class (its metadata lies in the `<engine>.json` next to it).
        cache_dir: where built engines are kept; default `default_cache_dir()`.
        fp16: build in FP16 where the GPU has fast FP16.
        device: the GPU: "cuda:N" is GPU N; "cuda", "auto" and "cpu" mean GPU 0 (TensorRT runs on a
            GPU only; "cpu" is accepted so that the pipeline's CPU default does not stop it).
    """

    def __init__(
        self,
        engine_or_onnx_path: Path,
        *,
        cache_dir: Path | None = None,
        fp16: bool = True,
        device: str = "cuda",
    ) -> None:
        gpu = parse_device(device).index
        self._trt, cuda = _import_tensorrt()
        path = require_file(Path(engine_or_onnx_path))
        self._tensor_api = uses_tensor_api(self._trt.__version__)
        cuda.init()
        if gpu >= cuda.Device.count():
            raise ModelError(
                f"device {device!r}: this machine has {cuda.Device.count()} CUDA GPU(s), numbered from 0 "
                "(nvidia-smi lists them); pick one of those"
            )
        self._cuda = cuda
        self._device = cuda.Device(gpu)
        # TensorRT builds and runs on the CUDA context current at creation (what cudaSetDevice
        # selects): GPU `gpu`'s primary context, pushed around every CUDA call (contexts are per thread).
        self._context = self._device.retain_primary_context()
        self._context.push()
        try:
            if path.suffix == ".onnx":
                engine_path = self._build_cached(path, cache_dir or default_cache_dir(), fp16)
            else:
                engine_path = path
            self.metadata = self._read_sidecar(engine_path)
            logger = self._trt.Logger(self._trt.Logger.WARNING)
            self._engine = self._trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
            if self._engine is None:
                raise ModelError(
                    f"TensorRT cannot deserialize {engine_path} (built by another TensorRT version or GPU?); "
                    "delete it and start again from the .onnx"
                )
            self._exec = self._engine.create_execution_context()
            self._stream = cuda.Stream()
        finally:
            self._context.pop()
        self._io = self._io_tensors()
        found = {n: (_contract_dtype(n, d), r) for n, (_, d, r) in self._io.items()}
        check_io(
            {n: found[n] for n, (is_input, _, _) in self._io.items() if is_input},
            {n: found[n] for n, (is_input, _, _) in self._io.items() if not is_input},
            engine_path,
        )
        self.path = engine_path
        self.name = f"tensorrt:{'fp16' if fp16 else 'fp32'}:cuda:{gpu}"
        self._buffers: dict[str, tuple[int, Any]] = {}  # name -> (bytes, device allocation)
        _log.info("TensorRT %s engine %s, tensors %s", self._trt.__version__, engine_path, self._io)

    def _build_cached(self, onnx_path: Path, cache_dir: Path, fp16: bool) -> Path:
        data = onnx_path.read_bytes()
        gpu = self._device.name()
        engine_path = cache_dir / engine_cache_key(
            hashlib.sha256(data).hexdigest(), self._trt.__version__, gpu, fp16=fp16
        )
        if engine_path.is_file() and engine_path.with_suffix(".json").is_file():
            _log.info("using cached TensorRT engine %s", engine_path)
            return engine_path
        import onnxruntime as ort  # the ONNX metadata, read once per build (no `onnx` at runtime)

        metadata = dict(ort.InferenceSession(str(onnx_path)).get_modelmeta().custom_metadata_map)
        info = ModelInfo.from_metadata(metadata, onnx_path)
        _log.warning("building a TensorRT engine for %s on %s (minutes; cached afterwards)", onnx_path, gpu)
        trt = self._trt
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        flags = 0 if self._tensor_api else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(data):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse {onnx_path}: {errors}; re-export it with fusion-export")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
        if fp16 and getattr(builder, "platform_has_fast_fp16", True):
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for name, channels in (("ir", 1), ("visible", 3)):
            profile.set_shape(
                name,
                *((1, channels, h, w) for h, w in optimisation_shapes(info.input_size, info.size_divisor)),
            )
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelError(
                f"TensorRT failed to build an engine from {onnx_path}; see the TensorRT log above"
            )
        cache_dir.mkdir(parents=True, exist_ok=True)
        engine_path.write_bytes(bytes(serialized))
        engine_path.with_suffix(".json").write_text(json.dumps(metadata))
        return engine_path

    @staticmethod
    def _read_sidecar(engine_path: Path) -> dict[str, str]:
        sidecar = engine_path.with_suffix(".json")
        if not sidecar.is_file():
            raise ModelError(
                f"{engine_path} has no metadata file {sidecar}; give the .onnx instead so the backend "
                "builds (and caches) the engine with its metadata"
            )
        return dict(json.loads(sidecar.read_text()))

    def _io_tensors(self) -> dict[str, tuple[bool, np.dtype, int]]:
        """name -> (is_input, dtype, rank), through the API this TensorRT version has."""
        trt, engine = self._trt, self._engine
        if self._tensor_api:
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            return {
                n: (
                    engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT,
                    np.dtype(trt.nptype(engine.get_tensor_dtype(n))),
                    len(engine.get_tensor_shape(n)),
                )
                for n in names
            }
        return {
            engine.get_binding_name(i): (
                engine.binding_is_input(i),
                np.dtype(trt.nptype(engine.get_binding_dtype(i))),
                len(engine.get_binding_shape(i)),
            )
            for i in range(engine.num_bindings)
        }

    def _device_buffer(self, name: str, nbytes: int) -> Any:
        size, allocation = self._buffers.get(name, (0, None))
        if size < nbytes:  # grow only: steady-state inference allocates nothing
            allocation = self._cuda.mem_alloc(max(nbytes, 1))
            self._buffers[name] = (nbytes, allocation)
        return allocation

    def infer(self, ir: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        """Run the engine; see `Backend.infer`."""
        cuda, ctx, inputs = self._cuda, self._exec, {"ir": ir, "visible": visible}
        self._context.push()
        try:
            for name, array in inputs.items():
                array = np.ascontiguousarray(array, CONTRACT_INPUTS[name][0])
                ok = (
                    ctx.set_input_shape(name, array.shape)
                    if self._tensor_api
                    else ctx.set_binding_shape(self._engine.get_binding_index(name), array.shape)
                )
                if not ok:
                    raise ModelError(
                        f"{self.path}: input {name} shape {array.shape} is outside the engine's profile; "
                        "use the model's input size or rebuild the engine"
                    )
                buffer = self._device_buffer(name, array.nbytes)
                cuda.memcpy_htod_async(buffer, array, self._stream)
            outputs: dict[str, np.ndarray] = {}
            for name in CONTRACT_OUTPUTS:
                shape = tuple(
                    ctx.get_tensor_shape(name)
                    if self._tensor_api
                    else ctx.get_binding_shape(self._engine.get_binding_index(name))
                )
                outputs[name] = np.empty(shape, self._io[name][1])
                self._device_buffer(name, outputs[name].nbytes)
            if self._tensor_api:
                for name, (_, allocation) in self._buffers.items():
                    ctx.set_tensor_address(name, int(allocation))
                ok = ctx.execute_async_v3(self._stream.handle)
            else:
                bindings = [0] * self._engine.num_bindings
                for name, (_, allocation) in self._buffers.items():
                    bindings[self._engine.get_binding_index(name)] = int(allocation)
                ok = ctx.execute_async_v2(bindings, self._stream.handle)
            if not ok:
                raise ModelError(f"{self.path}: TensorRT execution failed; see the TensorRT log")
            for name, host in outputs.items():
                cuda.memcpy_dtoh_async(host, self._buffers[name][1], self._stream)
            self._stream.synchronize()
        finally:
            self._context.pop()
        return {name: host.astype(CONTRACT_OUTPUTS[name][0], copy=False) for name, host in outputs.items()}
