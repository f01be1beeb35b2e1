"""Inference backends behind one `Backend` protocol; `open_backend` picks one by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fusion_node.pipeline.backends.base import Backend
from fusion_node.pipeline.backends.device import DEVICE_FORMS, Device, parse_device
from fusion_node.pipeline.errors import ModelError

BACKENDS = ("onnxruntime", "tensorrt")


def open_backend(
    path: Path, *, kind: Literal["onnxruntime", "tensorrt"] = "onnxruntime", **opts: Any
) -> Backend:
    """Open `path` with the backend `kind`; `opts` go to its constructor.

    onnxruntime: device (see `parse_device`), threads. tensorrt: cache_dir, fp16, device (its GPU).
    """
    if kind == "onnxruntime":
        from fusion_node.pipeline.backends.onnxruntime import OrtBackend

        return OrtBackend(path, **opts)
    if kind == "tensorrt":
        from fusion_node.pipeline.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(path, **opts)
    raise ModelError(f"unknown backend {kind!r}; use one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "DEVICE_FORMS", "Backend", "Device", "open_backend", "parse_device"]
