"""Atomic checkpoint writes, weights_only loading and RNG capture/restore."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from training.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint


def _state(value: float) -> dict[str, object]:
    net = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(net.weight, value)
    return {"step": 5, "models": {"fusion": net.state_dict(), "semantic": None}, "rng": capture_rng()}


def test_save_then_load_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "run" / "ckpt.pt"
    save_checkpoint(path, _state(0.5))
    loaded = load_checkpoint(path)
    assert loaded["step"] == 5 and loaded["models"]["semantic"] is None
    assert torch.equal(loaded["models"]["fusion"]["weight"], torch.full((2, 3), 0.5))
    assert torch.load(path, weights_only=True)["step"] == 5
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temp file left behind


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, _state(0.5))
    with pytest.raises(Exception, match=r"pickle|lambda"):
        save_checkpoint(path, {"models": {}, "bad": lambda: None})  # unpicklable: torch.save fails mid-way
    assert torch.equal(load_checkpoint(path)["models"]["fusion"]["weight"], torch.full((2, 3), 0.5))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a fusion training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_rng_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ckpt.pt", {"models": {}, "rng": capture_rng()})
    first = (random.random(), float(np.random.rand()), float(torch.rand(())))
    restore_rng(load_checkpoint(tmp_path / "ckpt.pt")["rng"])
    again = (random.random(), float(np.random.rand()), float(torch.rand(())))
    assert first == again
