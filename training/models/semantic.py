"""Semantic network S(ω_S): one light multi-task net (anchor-free detection + segmentation).

Backbone: a MobileNet-like stack of depthwise-separable stages (stride 2 each); neck: an FPN over
the detection strides; head: one FCOS-style head shared by the levels (cls, ltrb reg, centerness);
segmentation: the finest FPN level, refined with the stride-4 backbone feature, upsampled to the
input. BatchNorm in backbone/neck (folded into the convs at export); none in the shared head, whose
statistics would otherwise mix levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from training.models.errors import ModelConfigError

# ImageNet statistics in BGR order: the input is the fused BGR image.
_MEAN_BGR = (0.406, 0.456, 0.485)
_STD_BGR = (0.225, 0.224, 0.229)
_CLS_PRIOR = 0.01  # FCOS/RetinaNet: initial foreground probability, keeps the focal loss stable


@dataclass
class SemanticNetConfig:
    """Semantic network hyperparameters (YAML section ``semantic_net``).

    Attributes:
        num_classes: detection classes (len of the experiment's ``class_names``).
        num_seg_classes: segmentation classes (len of ``seg_class_names``).
        width: stem channels; stage i has ``width * 2**i`` channels, capped at ``max_width``.
        max_width: channel cap of the deeper stages.
        depth: residual separable blocks per backbone stage.
        neck_width: FPN and detection-head channels.
        head_depth: separable convs in the shared detection tower.
        seg_width: channels of the segmentation head.
        strides: detection strides, consecutive powers of two from 8 up.
    """

    num_classes: int = 6
    num_seg_classes: int = 9
    width: int = 16
    max_width: int = 128
    depth: int = 1
    neck_width: int = 64
    head_depth: int = 2
    seg_width: int = 32
    strides: tuple[int, ...] = field(default=(8, 16, 32))

    def __post_init__(self) -> None:
        self.strides = tuple(self.strides)  # YAML gives lists
        sizes = (self.num_classes, self.num_seg_classes, self.width, self.max_width, self.neck_width)
        if min(*sizes, self.seg_width) < 1 or self.depth < 0 or self.head_depth < 0:
            raise ModelConfigError(f"semantic_net sizes must be positive (depths >= 0), got {self}")
        expected = tuple(8 * 2**i for i in range(len(self.strides)))
        if not self.strides or self.strides != expected:
            raise ModelConfigError(
                f"semantic_net.strides={self.strides!r}: use consecutive powers of two from 8, "
                "e.g. (8, 16, 32)"
            )


class ConvBNAct(nn.Sequential):
    """Conv (k×k, stride, groups) + BatchNorm + ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, *, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )


class SepConvBN(nn.Sequential):
    """Depthwise 3×3 + pointwise 1×1, each with BN + ReLU."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1) -> None:
        super().__init__(ConvBNAct(cin, cin, 3, stride=stride, groups=cin), ConvBNAct(cin, cout, 1))


class _ResSep(SepConvBN):
    def __init__(self, width: int) -> None:
        super().__init__(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


class _Backbone(nn.Module):
    """Features at strides 4, 8, ..., max(strides) (the stride-2 stem feature is not returned)."""

    def __init__(self, cfg: SemanticNetConfig) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, cfg.width, 3, stride=2)  # [N, w, H/2, W/2]
        n_stages = int(math.log2(cfg.strides[-1])) - 1  # stride 4 .. max stride
        chans = [min(cfg.width * 2 ** (i + 1), cfg.max_width) for i in range(n_stages)]
        self.stages = nn.ModuleList()
        cin = cfg.width
        for c in chans:
            blocks = (_ResSep(c) for _ in range(cfg.depth))
            self.stages.append(nn.Sequential(SepConvBN(cin, c, stride=2), *blocks))
            cin = c
        self.channels = chans  # per returned feature, strides 4, 8, ...

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.stem(x)
        feats = []
        for stage in self.stages:
            f = stage(f)
            feats.append(f)  # [N, c_i, H/2^(i+2), W/2^(i+2)]
        return feats


def _upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    # Resize to the reference's own size (not ×2), so any input size works.
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class _FPN(nn.Module):
    """Top-down FPN: 1×1 laterals, upsample-add, separable 3×3 smoothing."""

    def __init__(self, in_channels: list[int], width: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(ConvBNAct(c, width, 1) for c in in_channels)
        self.smooth = nn.ModuleList(SepConvBN(width, width) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.laterals, feats, strict=True)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + _upsample_to(lat[i + 1], lat[i])
        return [smooth(p) for smooth, p in zip(self.smooth, lat, strict=True)]  # [N, neck, H/s, W/s]


class _DetectionHead(nn.Module):
    """FCOS-style head shared by all levels, with a learnable regression scale per level."""

    def __init__(self, width: int, num_classes: int, depth: int, num_levels: int) -> None:
        super().__init__()
        tower: list[nn.Module] = []
        for _ in range(depth):
            dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
            tower += [dw, nn.Conv2d(width, width, 1), nn.ReLU()]
        self.tower = nn.Sequential(*tower)
        self.cls = nn.Conv2d(width, num_classes, 3, padding=1)
        self.reg = nn.Conv2d(width, 4, 3, padding=1)
        self.ctr = nn.Conv2d(width, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(num_levels))
        nn.init.constant_(self.cls.get_parameter("bias"), -math.log((1 - _CLS_PRIOR) / _CLS_PRIOR))

    def forward(self, feats: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        out: dict[str, list[torch.Tensor]] = {"cls": [], "reg": [], "ctr": []}
        for i, f in enumerate(feats):
            t = self.tower(f)
            out["cls"].append(self.cls(t))  # [N, C, h, w] logits
            out["reg"].append(F.softplus(self.scales[i] * self.reg(t)))  # [N, 4, h, w] ltrb / stride, >= 0
            out["ctr"].append(self.ctr(t))  # [N, 1, h, w] logits
        return out


class _SegHead(nn.Module):
    """Finest FPN level + stride-4 backbone detail -> per-pixel logits at input resolution."""

    def __init__(self, neck_width: int, detail_channels: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.reduce = ConvBNAct(neck_width, width, 1)
        self.detail = ConvBNAct(detail_channels, width, 1)
        self.refine = SepConvBN(width, width)
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, p_fine: torch.Tensor, c4: torch.Tensor, size: torch.Size) -> torch.Tensor:
        d = self.detail(c4)  # [N, seg, H/4, W/4]
        x = self.refine(d + _upsample_to(self.reduce(p_fine), d))
        logits = self.classify(x)  # [N, S, H/4, W/4]
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)  # [N, S, H, W]


class SemanticNet(nn.Module):
    """forward(x [N,3,H,W] BGR 0..1) -> {"cls", "reg", "ctr": one tensor per stride, "seg": [N,S,H,W]}."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, cfg: SemanticNetConfig) -> None:
        super().__init__()
        self.strides = list(cfg.strides)
        self.register_buffer("mean", torch.tensor(_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD_BGR).view(1, 3, 1, 1), persistent=False)
        self.backbone = _Backbone(cfg)
        det_channels = self.backbone.channels[1:]  # strides 8, 16, ...
        self.neck = _FPN(det_channels, cfg.neck_width)
        self.head = _DetectionHead(cfg.neck_width, cfg.num_classes, cfg.head_depth, len(self.strides))
        self.seg = _SegHead(cfg.neck_width, self.backbone.channels[0], cfg.seg_width, cfg.num_seg_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        c = self.backbone((x - self.mean) / self.std)  # strides 4, 8, 16, 32
        p = self.neck(c[1:])  # strides 8, 16, 32, all [N, neck, H/s, W/s]
        out: dict[str, torch.Tensor | list[torch.Tensor]] = dict(self.head(p))
        out["seg"] = self.seg(p[0], c[0], x.shape[-2:])
        return out
