"""ONNX Runtime backend (CPU, or CUDA with the onnxruntime-gpu wheel)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

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


class OrtBackend:
    """Runs a contract model with ONNX Runtime.

    Args:
        path: the .onnx file.
        device: "cpu"; "cuda" (error when this onnxruntime has no CUDA provider); "auto" (CUDA
            when available, else CPU with a log line).
        threads: intra-op threads; 0 lets ONNX Runtime choose (one per physical core).
    """

    def __init__(
        self, path: Path, *, device: Literal["cpu", "cuda", "auto"] = "cpu", threads: int = 0
    ) -> None:
        path = require_file(Path(path))
        available = ort.get_available_providers()
        if device == "cpu":
            providers = [_CPU]
        elif device in ("cuda", "auto") and _CUDA in available:
            providers = [_CUDA, _CPU]
        elif device == "auto":
            _log.info("device 'auto': no CUDAExecutionProvider in this onnxruntime, running on CPU")
            providers = [_CPU]
        elif device == "cuda":
            raise ModelError(
                f"device 'cuda' but this onnxruntime only has {available}; install onnxruntime-gpu "
                "(matching your CUDA) or set device to 'cpu' or 'auto'"
            )
        else:
            raise ModelError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Idle intra-op threads sleep instead of spinning: on a robot's few cores they would take
        # CPU from the camera drivers, DDS and the node's own threads, and a descheduled spinning
        # thread stalls the others at every barrier (2x slower inference on a loaded 2-core CPU).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except _ORT_ERRORS as err:
            raise ModelError(
                f"ONNX Runtime cannot load {path} ({err}); the file is corrupt or not an ONNX model: "
                "re-export it with fusion-export"
            ) from err
        self.path = path
        self.name = f"onnxruntime:{self._session.get_providers()[0]}"
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
