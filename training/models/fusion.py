"""Fusion network F(θ): (IR, visible Y) -> fused Y, both configurations of the method.

"paper" is the authors' network (method.md, BDLFusion ``Fusion_Network``): full resolution
throughout, ~0.4 M params, ~120 GMAC per 640×480 frame. "realtime" is ours: a three-scale
depthwise-separable encoder–decoder (< 1 GMAC at 640×480) whose output is a learned per-pixel
blend of the two sources plus a residual detail term, so it starts as the mean of the sources and
only has to learn corrections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from training.models.errors import ModelConfigError


@dataclass
class FusionNetConfig:
    """Fusion network hyperparameters (YAML section ``fusion_net``).

    Attributes:
        arch: "realtime" (our default) or "paper" (the authors' network).
        widths: realtime channels at strides 1, 2 and 4.
        context_blocks: realtime residual blocks at stride 4 (dilation alternates 1, 2).
        paper_width: paper feature channels.
        paper_growth: paper dense-block growth rate.
        paper_layers: paper dilated convs per dense block.
        paper_blocks: paper dense blocks.
    """

    arch: Literal["realtime", "paper"] = "realtime"
    widths: tuple[int, int, int] = (16, 32, 48)
    context_blocks: int = 2
    paper_width: int = 64
    paper_growth: int = 32
    paper_layers: int = 5
    paper_blocks: int = 2

    def __post_init__(self) -> None:
        if self.arch not in ("realtime", "paper"):
            raise ModelConfigError(f"fusion_net.arch={self.arch!r} is unknown: use 'realtime' or 'paper'")
        self.widths = tuple(self.widths)  # type: ignore[assignment]  # YAML gives lists
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ModelConfigError(f"fusion_net.widths={self.widths!r}: give three positive channel counts")
        sizes = (self.paper_width, self.paper_growth, self.paper_layers, self.paper_blocks)
        if min(self.context_blocks, *sizes) < 1:
            raise ModelConfigError(f"fusion_net sizes must be >= 1, got {self}")


# ---------------------------------------------------------------- paper: dilated residual dense net


class _DilatedDenseBlock(nn.Module):
    """Dense 3×3 dilation-2 convs with ReLU, 1×1 back to ``width``, residual add (authors' DRDB)."""

    def __init__(self, width: int, growth: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(width + i * growth, growth, 3, padding=2, dilation=2) for i in range(layers)
        )
        self.fuse = nn.Conv2d(width + layers * growth, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = x  # [N, width + i*growth, H, W] after i layers
        for conv in self.convs:
            feats = torch.cat([feats, F.relu(conv(feats))], dim=1)
        return x + F.relu(self.fuse(feats))  # [N, width, H, W]


class PaperFusionNet(nn.Module):
    """The authors' fusion network; one PReLU shared by the first and last conv, as in their code."""

    def __init__(self, cfg: FusionNetConfig) -> None:
        super().__init__()
        self.head = nn.Conv2d(2, cfg.paper_width, 3, padding=1)
        block = (cfg.paper_width, cfg.paper_growth, cfg.paper_layers)
        self.blocks = nn.Sequential(*(_DilatedDenseBlock(*block) for _ in range(cfg.paper_blocks)))
        self.tail = nn.Conv2d(cfg.paper_width, 1, 3, padding=1)
        self.act = nn.PReLU()

    def forward(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        x = self.act(self.head(torch.cat([ir, vis_y], dim=1)))  # [N, 64, H, W]
        x = self.blocks(x)  # [N, 64, H, W]
        # The authors' PReLU output is unbounded; clamp to the 0..1 contract of every fusion net.
        return self.act(self.tail(x)).clamp(0.0, 1.0)  # [N, 1, H, W]


# ---------------------------------------------------------------- realtime: separable encoder–decoder


class _SepConv(nn.Module):
    """Depthwise 3×3 (stride, dilation) + pointwise 1×1 + ReLU."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=dilation, dilation=dilation, groups=cin)
        self.pw = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pw(self.dw(x)))


class _SepResidual(_SepConv):
    """Same-width separable conv with a residual connection."""

    def __init__(self, width: int, *, dilation: int = 1) -> None:
        super().__init__(width, width, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


class _UpMerge(nn.Module):
    """1×1 to the skip's width at low resolution (cheaper), bilinear up to the skip's size, add, refine.

    Upsampling to the skip's own size (not ×2) makes the net work for any H, W, odd ones included.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(cin, cout, 1)
        self.refine = _SepResidual(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(skip + up)


class RealtimeFusionNet(nn.Module):
    """Ours: stride 1/2/4 separable encoder–decoder with full-resolution skip; blend + residual output."""

    def __init__(self, cfg: FusionNetConfig) -> None:
        super().__init__()
        c0, c1, c2 = cfg.widths
        self.stem = nn.Sequential(nn.Conv2d(2, c0, 3, padding=1), nn.ReLU(), _SepResidual(c0))
        self.down1 = nn.Sequential(_SepConv(c0, c1, stride=2), _SepResidual(c1))
        self.down2 = _SepConv(c1, c2, stride=2)
        blocks = (_SepResidual(c2, dilation=1 + i % 2) for i in range(cfg.context_blocks))
        self.context = nn.Sequential(*blocks)
        self.up1 = _UpMerge(c2, c1)
        self.up0 = _UpMerge(c1, c0)
        # Two maps: blend weight logit and residual detail. Zero init -> output starts at (ir + vis) / 2.
        self.out = nn.Conv2d(c0, 2, 3, padding=1)
        for p in self.out.parameters():
            nn.init.zeros_(p)

    def forward(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        f0 = self.stem(torch.cat([ir, vis_y], dim=1))  # [N, c0, H, W]
        f1 = self.down1(f0)  # [N, c1, H/2, W/2]
        f2 = self.context(self.down2(f1))  # [N, c2, H/4, W/4]
        d0 = self.up0(self.up1(f2, f1), f0)  # [N, c0, H, W]
        logit, detail = self.out(d0).split(1, dim=1)  # [N, 1, H, W] each
        w = torch.sigmoid(logit)
        return (w * ir + (1.0 - w) * vis_y + detail).clamp(0.0, 1.0)  # [N, 1, H, W]


def build_fusion_net(cfg: FusionNetConfig) -> nn.Module:
    """The fusion network for ``cfg.arch``: forward(ir [N,1,H,W], vis_y [N,1,H,W]) -> [N,1,H,W] 0..1."""
    return PaperFusionNet(cfg) if cfg.arch == "paper" else RealtimeFusionNet(cfg)
