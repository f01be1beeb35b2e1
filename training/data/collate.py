"""Batching samples of varying box counts (and optional masks) into the loop's batch dict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from training.data.errors import DataError

Batch = dict[str, Any]
"""A collated batch (see `collate`)."""


def collate(samples: Sequence[dict[str, Any]]) -> Batch:
    """Stack images (and masks when every sample has one); keep boxes/labels as per-sample lists.

    Returns {"ir": [N,1,H,W], "visible": [N,3,H,W], "boxes": [Tensor[M_i,4]], "labels": [Tensor[M_i]],
    "mask": [N,H,W] int64 or None, "names": [str]}.
    """
    if not samples:
        raise DataError("collate got an empty batch")
    sizes = {tuple(s["ir"].shape[-2:]) for s in samples}
    if len(sizes) > 1:
        raise DataError(f"batch mixes image sizes {sorted(sizes)}: set crop_size/eval_size, or batch size 1")
    masks = [s["mask"] for s in samples]
    return {
        "ir": torch.stack([s["ir"] for s in samples]),
        "visible": torch.stack([s["visible"] for s in samples]),
        "boxes": [s["boxes"] for s in samples],
        "labels": [s["labels"] for s in samples],
        "mask": None if any(m is None for m in masks) else torch.stack(masks),
        "names": [s["name"] for s in samples],
    }
