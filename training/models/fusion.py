"""Fusion network F(θ): (IR, visible Y) -> fused Y, both configurations of the method.

"paper" is the authors' network (method.md, BDLFusion ``Fusion_Network``): full resolution
throughout, ~0.4 M params, ~120 GMAC per 640×480 frame. "realtime" is ours: a three-scale
depthwise-separable encoder–decoder (< 1 GMAC at 640×480). "fast" is ours shaped for ONNX Runtime's
CPU kernels (docs/benchmarks.md): an f×f stride-f conv down to 1/f resolution (each output sees
every pixel of its block; cheaper in ORT than PixelUnshuffle's 6-D Transpose), plain dense 3×3
convs there (ORT's fastest conv path) and pixel-shuffle (DepthToSpace) back, with no depthwise conv
and no Resize. Both of ours end in a fixed output form with learned per-pixel maps (``output``):
"blend", a convex blend of the two sources plus a residual detail term, starts as their mean;
"additive", each source's contrast around its image mean with a per-pixel gain in (0, 2), plus
detail, starts as `contrast_sum` (the mean level plus both contrasts: higher SD, SCD and VIF than
any blend). Either way the net only has to learn corrections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.models.errors import ModelConfigError


@dataclass
class FusionNetConfig:
    """Fusion network hyperparameters (YAML section ``fusion_net``).

    Attributes:
        arch: "realtime" (our default), "fast" (ours for ORT CPU) or "paper" (the authors' network).
        widths: realtime channels at strides 1, 2 and 4.
        context_blocks: realtime residual blocks at stride 4 (dilation alternates 1, 2).
        fast_factor: fast down/up factor f (the convs run at 1/f of the resolution).
        fast_width: fast conv channels.
        fast_blocks: fast residual blocks (two 3×3 convs each) between the f×f stem and last conv.
        paper_width: paper feature channels.
        paper_growth: paper dense-block growth rate.
        paper_layers: paper dilated convs per dense block.
        paper_blocks: paper dense blocks.
        output: our nets' output form, "blend" or "additive" (see the module docstring).
    """

    arch: Literal["realtime", "fast", "paper"] = "realtime"
    output: Literal["blend", "additive"] = "blend"
    widths: tuple[int, int, int] = (16, 32, 48)
    context_blocks: int = 2
    fast_factor: int = 4
    fast_width: int = 24
    fast_blocks: int = 2
    paper_width: int = 64
    paper_growth: int = 32
    paper_layers: int = 5
    paper_blocks: int = 2

    def __post_init__(self) -> None:
        if self.arch not in ("realtime", "fast", "paper"):
            raise ModelConfigError(
                f"fusion_net.arch={self.arch!r} is unknown: use 'realtime', 'fast' or 'paper'"
            )
        if self.output not in OUTPUT_MAPS:
            raise ModelConfigError(f"fusion_net.output={self.output!r} is unknown: use 'blend' or 'additive'")
        if self.arch == "paper" and self.output != "blend":
            raise ModelConfigError("fusion_net.output is for our nets only: the paper net has its own output")
        self.widths = tuple(self.widths)  # type: ignore[assignment]  # YAML gives lists
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ModelConfigError(f"fusion_net.widths={self.widths!r}: give three positive channel counts")
        sizes = (self.paper_width, self.paper_growth, self.paper_layers, self.paper_blocks)
        if min(self.context_blocks, self.fast_factor, self.fast_width, *sizes) < 1 or self.fast_blocks < 0:
            raise ModelConfigError(f"fusion_net sizes must be >= 1 (fast_blocks >= 0), got {self}")


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


# ---------------------------------------------------------------- ours: the output forms


def _zero_init(conv: nn.Conv2d) -> nn.Conv2d:
    """Zero weights and bias: the output form below then starts at its prior (mean or contrast sum)."""
    for p in conv.parameters():
        nn.init.zeros_(p)
    return conv


Array = TypeVar("Array", np.ndarray, torch.Tensor)


def contrast_sum(ir: Array, vis_y: Array, mean_ir: Array | float, mean_vis: Array | float) -> Array:
    """The mean level of the two images plus both contrasts: IR + VIS_Y − (μ_IR + μ_VIS)/2 (unclipped).

    The additive output's start, its loss target (fusion_loss.intensity_target=sum) and a trivial
    fusion of fusion-eval --trivial; numpy or torch alike.
    """
    return ir + vis_y - (mean_ir + mean_vis) / 2


def _blend(maps: torch.Tensor, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
    """[N,2,H,W] (blend weight logit, residual detail) -> w·IR + (1−w)·VIS_Y + detail in 0..1."""
    logit, detail = maps.split(1, dim=1)  # [N, 1, H, W] each
    w = torch.sigmoid(logit)
    return (w * ir + (1.0 - w) * vis_y + detail).clamp(0.0, 1.0)  # [N, 1, H, W]


def _additive(maps: torch.Tensor, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] (IR gain logit, VIS gain logit, detail) -> a·(IR−μ_IR) + b·(VIS_Y−μ_VIS) + level + detail.

    a, b = 2·sigmoid(logit) in (0, 2); μ per image; zero maps give `contrast_sum` exactly.
    """
    logit_ir, logit_vis, detail = maps.split(1, dim=1)  # [N, 1, H, W] each
    mean_ir = ir.mean(dim=(2, 3), keepdim=True)  # [N, 1, 1, 1]
    mean_vis = vis_y.mean(dim=(2, 3), keepdim=True)
    a, b = 2.0 * torch.sigmoid(logit_ir), 2.0 * torch.sigmoid(logit_vis)
    level = (mean_ir + mean_vis) / 2
    return (a * (ir - mean_ir) + b * (vis_y - mean_vis) + level + detail).clamp(0.0, 1.0)  # [N, 1, H, W]


OUTPUT_MAPS = {"blend": 2, "additive": 3}
"""Maps each output form takes from the net."""
OUTPUTS = {"blend": _blend, "additive": _additive}


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
    """Ours: stride 1/2/4 separable encoder–decoder with full-resolution skip; output form."""

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
        self.output = OUTPUTS[cfg.output]
        self.out = _zero_init(nn.Conv2d(c0, OUTPUT_MAPS[cfg.output], 3, padding=1))  # the output's maps

    def forward(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        f0 = self.stem(torch.cat([ir, vis_y], dim=1))  # [N, c0, H, W]
        f1 = self.down1(f0)  # [N, c1, H/2, W/2]
        f2 = self.context(self.down2(f1))  # [N, c2, H/4, W/4]
        d0 = self.up0(self.up1(f2, f1), f0)  # [N, c0, H, W]
        return self.output(self.out(d0), ir, vis_y)


# ---------------------------------------------------------------- fast: dense 3×3 at 1/f resolution


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class _Residual(nn.Module):
    """x + conv(relu(conv(x))), then ReLU: a plain 3×3 residual block."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.a, self.b = _conv3(width, width), _conv3(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(F.relu(self.a(x))))


class FastFusionNet(nn.Module):
    """Ours for ORT CPU: f×f stride-f conv, dense 3×3 convs at 1/f, pixel-shuffle back; output form.

    Each 1/f position sees all f×f pixels of its block and predicts the output maps of each of
    them, so the output keeps full-resolution detail. Sides that are not multiples of f are padded
    (replicate) and cropped back; the exported graph's sides are multiples of its size divisor, so
    it never pads.
    """

    def __init__(self, cfg: FusionNetConfig) -> None:
        super().__init__()
        f, c = cfg.fast_factor, cfg.fast_width
        self.factor = f
        self.output = OUTPUTS[cfg.output]
        self.body = nn.Sequential(
            nn.Conv2d(2, c, f, stride=f),  # [N, c, H/f, W/f]
            nn.ReLU(),
            *(_Residual(c) for _ in range(cfg.fast_blocks)),
            _zero_init(_conv3(c, OUTPUT_MAPS[cfg.output] * f * f)),
            nn.PixelShuffle(f),  # [N, maps, H, W]
        )

    def forward(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        h, w = ir.shape[-2:]
        pad_h, pad_w = -h % self.factor, -w % self.factor
        x = torch.cat([ir, vis_y], dim=1)  # [N, 2, H, W]
        if pad_h or pad_w:  # Python branch: never taken, so never traced, for divisible sides
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            maps = self.body(x)[..., :h, :w]
        else:
            maps = self.body(x)
        return self.output(maps, ir, vis_y)


def build_fusion_net(cfg: FusionNetConfig) -> nn.Module:
    """The fusion network for ``cfg.arch``: forward(ir [N,1,H,W], vis_y [N,1,H,W]) -> [N,1,H,W] 0..1."""
    nets: dict[str, type[nn.Module]] = {
        "paper": PaperFusionNet,
        "realtime": RealtimeFusionNet,
        "fast": FastFusionNet,
    }
    return nets[cfg.arch](cfg)
