"""Parameter and multiply–accumulate counts, for configs, tests and the loop's ``--summary``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from training.models.discriminator import Discriminator, DiscriminatorConfig
from training.models.fusion import FusionNetConfig, build_fusion_net
from training.models.semantic import SemanticNet, SemanticNetConfig


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one forward pass on ``inputs``, counted by hooks on every Conv2d and Linear.

    A conv output element costs (C_in / groups) · k_h · k_w MACs, so depthwise convs count right.
    Elementwise ops, pooling and resizing are not counted (they are a small share here).
    """
    # MACs per output element of each counted layer.
    cost: dict[nn.Module, int] = {}
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            cost[m] = (m.in_channels // m.groups) * kh * kw
        elif isinstance(m, nn.Linear):
            cost[m] = m.in_features
    total = 0

    def hook(module: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * cost[module]

    handles = [m.register_forward_hook(hook) for m in cost]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total


def summarize(
    fusion_cfg: FusionNetConfig,
    disc_cfg: DiscriminatorConfig | None,
    sem_cfg: SemanticNetConfig | None,
    size: tuple[int, int] = (480, 640),
) -> list[dict[str, Any]]:
    """One row per configured net: {"name", "params", "gmac"} for one H×W frame (batch 1)."""
    h, w = size
    one = torch.zeros(1, 1, h, w)
    nets: list[tuple[str, nn.Module, tuple[torch.Tensor, ...]]] = [
        (f"fusion ({fusion_cfg.arch})", build_fusion_net(fusion_cfg), (one, one))
    ]
    if disc_cfg is not None:
        nets.append(("discriminator", Discriminator(disc_cfg), (one, one)))
    if sem_cfg is not None:
        nets.append(("semantic", SemanticNet(sem_cfg), (torch.zeros(1, 3, h, w),)))
    return [
        {"name": name, "params": count_params(net), "gmac": count_macs(net.eval(), *inputs) / 1e9}
        for name, net, inputs in nets
    ]
