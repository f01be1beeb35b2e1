"""Anchor-free detection geometry shared by the semantic head, its loss and its decoder."""
from __future__ import annotations

import torch


def make_points(
    sizes: list[tuple[int, int]], strides: list[int], device: torch.device | None = None
) -> list[torch.Tensor]:
    """Centres of the feature-map cells, one (h*w, 2) tensor of (x, y) pixels per level.

    Cell (i, j) of a level with stride s covers pixels [j*s, (j+1)*s) horizontally, so its centre
    is ((j + 0.5) * s, (i + 0.5) * s). Order is row-major (y outer, x inner), matching
    ``tensor.flatten(2)`` of an N×C×h×w map.
    """
    points = []
    for (h, w), s in zip(sizes, strides, strict=True):
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))
    return points
