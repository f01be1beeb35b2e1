"""Atomic checkpoints of plain types (loadable with `torch.load(weights_only=True)`), RNG capture."""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read; the message names the file and the fix."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` atomically: temp file in the same folder, fsync, then os.replace.

    A crash mid-write leaves the previous checkpoint intact, never a truncated file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True` (no arbitrary code from the file).

    Raises:
        CheckpointError: missing file, or a file that is not a plain-types checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a ckpt.pt file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError) as err:
        raise CheckpointError(f"cannot load checkpoint {path}: {err}") from err
    if not isinstance(state, dict) or "models" not in state:
        raise CheckpointError(f"{path} is not a fusion training checkpoint (no 'models' entry)")
    return state


def capture_rng() -> dict[str, Any]:
    """RNG states of python, numpy, torch (and CUDA) as plain lists/tensors."""
    version, mt, gauss = random.getstate()
    numpy_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    kind, keys, pos, has_gauss, cached = numpy_state
    state: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of capture_rng."""
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
