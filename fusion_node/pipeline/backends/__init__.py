"""Inference backends behind one `Backend` protocol; `open_backend` picks one by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fusion_node.pipeline.backends.base import Backend
from fusion_node.pipeline.errors import ModelError

BACKENDS = ("onnxruntime", "tensorrt")


def open_backend(
    path: Path, *, kind: Literal["onnxruntime", "tensorrt"] = "onnxruntime", **opts: Any
) -> Backend:
    """Open `path` with the backend `kind`; `opts` go to its constructor.

    onnxruntime: device ("cpu" | "cuda" | "auto"), threads. tensorrt: cache_dir, fp16.
    """
    if kind == "onnxruntime":
        from fusion_node.pipeline.backends.onnxruntime import OrtBackend

        return OrtBackend(path, **opts)
    if kind == "tensorrt":
        from fusion_node.pipeline.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(path, **opts)
    raise ModelError(f"unknown backend {kind!r}; use one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "open_backend"]
