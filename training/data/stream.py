"""Endless, resumable, per-rank batch streams for the training loop, and the seeded dataset view
that makes every augmentation a function of (seed, epoch, position) alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from training.data.collate import Batch, collate
from training.data.errors import DataError
from training.distributed import DistContext


class SeededDataset(Dataset[dict[str, Any]]):
    """Fetches `(token, index)` with torch's RNG forked and seeded by the token.

    The datasets draw their augmentation seed from torch's RNG; seeding it per sample makes every
    crop a function of (seed, epoch, position) alone, whatever the worker count or resume point.
    """

    def __init__(self, dataset: Dataset[dict[str, Any]]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        token, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(token)
            return self.dataset[index]


class _EndlessSampler(Sampler[tuple[int, int]]):
    """(token, index) keys of this rank's shard, epoch after epoch, from batch `start` on.

    Epoch e is DistributedSampler(seed).set_epoch(e), cut to whole batches; each position gets its
    own augmentation token from SeedSequence([seed, e, rank]).
    """

    def __init__(
        self, dataset: Dataset[dict[str, Any]], *, batch_size: int, seed: int, ctx: DistContext
    ) -> None:
        self.shard: DistributedSampler[int] = DistributedSampler(
            dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.per_epoch = self.shard.num_samples // batch_size
        if self.per_epoch == 0:
            raise DataError(
                f"{len(self.shard.dataset)} training pairs cannot fill one batch of {batch_size} on each "  # type: ignore[arg-type]
                f"of {ctx.world_size} ranks: lower train.batch_size or add data"
            )
        self.batch_size, self.seed, self.rank = batch_size, seed, ctx.rank
        self.start = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = divmod(self.start, self.per_epoch)
        while True:
            self.shard.set_epoch(epoch)
            order = list(self.shard)[: self.per_epoch * self.batch_size]
            tokens = np.random.SeedSequence([self.seed, epoch, self.rank]).generate_state(len(order)).tolist()
            yield from list(zip(tokens, order, strict=True))[skip * self.batch_size :]
            epoch, skip = epoch + 1, 0


class BatchStream:
    """Endless shuffled batches of one dataset (this rank's shard), resumable at any batch.

    One DataLoader over an endless sampler, so workers start once. The count of batches handed out
    is the whole state: a resumed run fetches exactly the batches the uninterrupted run would have
    (batches that workers prefetched but the loop never took are simply fetched again).
    """

    def __init__(
        self,
        dataset: Dataset[dict[str, Any]],
        *,
        batch_size: int,
        seed: int,
        ctx: DistContext,
        num_workers: int,
        pin_memory: bool,
    ) -> None:
        self.sampler = _EndlessSampler(dataset, batch_size=batch_size, seed=seed, ctx=ctx)
        self.loader = DataLoader(
            SeededDataset(dataset),
            batch_size=batch_size,
            sampler=self.sampler,
            collate_fn=collate,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )
        self.batches = 0
        self._it: Iterator[Batch] | None = None

    def __next__(self) -> Batch:
        if self._it is None:
            self.sampler.start = self.batches
            self._it = iter(self.loader)
        self.batches += 1
        return next(self._it)

    def state_dict(self) -> dict[str, int]:
        return {"batches": self.batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batches, self._it = int(state["batches"]), None
