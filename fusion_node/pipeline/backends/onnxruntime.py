"""ONNX Runtime backend (CPU, or CUDA on a chosen GPU with the onnxruntime-gpu wheel)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from fusion_node.pipeline.backends.device import parse_device
from fusion_node.pipeline.errors import ModelError
from fusion_node.pipeline.model import CONTRACT_OUTPUTS, check_io, require_file

_log = logging.getLogger(__name__)
# What ONNX Runtime raises for unreadable models and failed runs (plain Exception subclasses).
_ORT_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def _numpy_dtype(ort_type: str) -> np.dtype:
    """'tensor(uint8)' -> np.dtype('uint8'); types numpy lacks map to object (never in the contract)."""
    name = ort_type.removeprefix("tensor(").removesuffix(")")
    try:
        return np.dtype({"float": "float32", "double": "float64"}.get(name, name))
    except TypeError:
        return np.dtype(object)


def session_providers(device: str, available: Sequence[str]) -> list[str | tuple[str, dict[str, Any]]]:
    """The `providers` of an InferenceSession for `device`, given the providers this onnxruntime has.

    "cuda:N" selects GPU N through the CUDA provider's `device_id` option; CPU stays second, for the
    few nodes CUDA lacks kernels for.

    Raises:
        ModelError: an unknown device, or a CUDA device where this onnxruntime has no CUDA provider.
    """
    parsed = parse_device(device)
    if parsed.kind == "cpu":
        return [_CPU]
    if _CUDA in available:
        return [(_CUDA, {"device_id": parsed.index}), _CPU]
    if parsed.kind == "auto":
        _log.info("device 'auto': no CUDAExecutionProvider in this onnxruntime, running on CPU")
        return [_CPU]
    raise ModelError(
        f"device {device!r} but this onnxruntime only has {list(available)}; install onnxruntime-gpu "
        "(matching your CUDA) instead of onnxruntime, or set device to 'cpu' or 'auto'"
    )


class OrtBackend:
    """Runs a contract model with ONNX Runtime.

    Args:
        path: the .onnx file.
        device: "cpu"; "cuda" or "cuda:N" (GPU 0 or N; an error when this onnxruntime has no CUDA
            provider or CUDA cannot start); "auto" (CUDA on GPU 0 when available, else CPU with a
            log line). See `session_providers`.
        threads: intra-op threads; 0 lets ONNX Runtime choose (one per physical core).
    """

    def __init__(self, path: Path, *, device: str = "cpu", threads: int = 0) -> None:
        path = require_file(Path(path))
        providers = session_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Idle intra-op threads sleep instead of spinning: on a robot's few cores they would take
        # CPU from the camera drivers, DDS and the node's own threads, and a descheduled spinning
        # thread stalls the others at every barrier (2x slower inference on a loaded 2-core CPU).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except _ORT_ERRORS as err:
            gpu_hint = (
                "the GPU index is wrong (nvidia-smi lists them) or CUDA/cuDNN do not match onnxruntime-gpu "
                "(or set device to 'cpu'), or "
                if providers[0] != _CPU
                else ""
            )
            raise ModelError(
                f"ONNX Runtime cannot load {path} on device {device!r} ({err}); {gpu_hint}the file is "
                "corrupt or not an ONNX model: re-export it with fusion-export"
            ) from err
        used = self._session.get_providers()[0]
        if parse_device(device).kind == "cuda" and used != _CUDA:
            # ONNX Runtime falls back to CPU with only a warning when the CUDA libraries fail to load.
            raise ModelError(
                f"device {device!r}: ONNX Runtime could not start CUDA and fell back to {used} (its warning "
                "above names the missing CUDA/cuDNN library); install that or set device to 'cpu'"
            )
        self.path = path
        self.name = f"onnxruntime:{used}"
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        check_io(
            {i.name: (_numpy_dtype(i.type), len(i.shape)) for i in self._session.get_inputs()},
            {o.name: (_numpy_dtype(o.type), len(o.shape)) for o in self._session.get_outputs()},
            path,
        )
        self._output_names = list(CONTRACT_OUTPUTS)

    def infer(self, ir: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model; see `Backend.infer`."""
        try:
            results = self._session.run(self._output_names, {"ir": ir, "visible": visible})
        except _ORT_ERRORS as err:
            raise ModelError(
                f"{self.path} failed on ir {ir.shape} {ir.dtype}, visible {visible.shape} {visible.dtype}: "
                f"{err}"
            ) from err
        return dict(zip(self._output_names, results, strict=True))
