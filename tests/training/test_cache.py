"""The in-memory cache of decoded training images: same samples as from disk, within its budget."""

from __future__ import annotations

from pathlib import Path

import torch

from training.data import DataConfig, build_datasets
from training.data.cache import preload


def _train_set(data_dir: Path) -> torch.utils.data.Dataset:
    root = (data_dir / "roadscene").resolve()
    cfg = DataConfig(fusion_train=[{"kind": "paired", "root": str(root)}], crop_size=(64, 64))  # type: ignore[list-item]
    return build_datasets(cfg, [], [])["fusion_train"]


def _sample(dataset: torch.utils.data.Dataset, index: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(index)  # the same augmentation draw
    return dataset[index]


def test_cached_samples_equal_decoded_ones(data_dir: Path) -> None:
    cached, fresh = _train_set(data_dir), _train_set(data_dir)
    used = preload(cached, 2**40)
    part = cached.dataset  # Subset of the one PairDataset
    assert len(part.decoded) == len(cached) and all(
        a.dtype.name == "uint8" for p in part.decoded.values() for a in p
    )
    assert used == sum(a.nbytes for p in part.decoded.values() for a in p)
    for index in (0, len(cached) - 1):
        a, b = _sample(cached, index), _sample(fresh, index)
        assert torch.equal(a["ir"], b["ir"]) and torch.equal(a["visible"], b["visible"])


def test_preload_stops_at_its_budget(data_dir: Path) -> None:
    full = _train_set(data_dir)
    preload(full, 2**40)
    sizes = [sum(a.nbytes for a in full.dataset.decoded[i]) for i in full.indices[:4]]
    dataset = _train_set(data_dir)
    assert preload(dataset, sum(sizes[:3]) + sizes[3] - 1) == sum(sizes[:3])  # the 4th does not fit
    assert sorted(dataset.dataset.decoded) == sorted(full.indices[:3])
    assert preload(_train_set(data_dir), 0) == 0
