"""Decoded training images kept in memory, so batches no longer wait for PNG/JPEG decoding.

`preload` decodes a dataset's pairs once, as uint8 (a quarter of float32's memory), into each
`PairDataset.decoded` until a byte budget is used up; the remaining pairs are read from disk as
before. Call it before the DataLoader starts its workers: forked workers then share the arrays
(copy-on-write) instead of each decoding its own copy.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import ConcatDataset, Dataset, Subset

from training.data.datasets import PairDataset
from training.data.errors import DataError


def _leaves(dataset: Dataset[Any], indices: Sequence[int]) -> Iterator[tuple[PairDataset, int]]:
    """(PairDataset, its index) for each of `indices` of a Subset/ConcatDataset tree."""
    if isinstance(dataset, Subset):
        yield from _leaves(dataset.dataset, [dataset.indices[i] for i in indices])
    elif isinstance(dataset, ConcatDataset):
        for i in indices:
            part = bisect.bisect_right(dataset.cumulative_sizes, i)
            start = dataset.cumulative_sizes[part - 1] if part else 0
            yield from _leaves(dataset.datasets[part], [i - start])
    elif isinstance(dataset, PairDataset):
        yield from ((dataset, i) for i in indices)
    else:
        raise DataError(f"cannot cache {type(dataset).__name__}: build datasets with build_datasets")


def preload(dataset: Dataset[Any], max_bytes: int) -> int:
    """Decode `dataset`'s pairs into memory, in index order, while they fit in `max_bytes`.

    Returns the bytes now held for this dataset (pairs cached before are counted, not re-read).
    """
    used = 0
    for part, index in _leaves(dataset, range(len(dataset))):  # type: ignore[arg-type]
        pair = part.decode(index)
        size = pair[0].nbytes + pair[1].nbytes
        if used + size > max_bytes:
            break
        part.decoded[index] = pair
        used += size
    return used
