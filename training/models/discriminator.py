"""Discriminator D(ω_D): one shared conv trunk, an IR-saliency head and a visible-detail head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.models.errors import ModelConfigError


@dataclass
class DiscriminatorConfig:
    """Discriminator hyperparameters (YAML section ``discriminator``).

    Attributes:
        width: channels of the first trunk conv; doubled at each further stride-2 stage.
        depth: stride-2 conv stages in the shared trunk.
        negative_slope: LeakyReLU slope.
    """

    width: int = 32
    depth: int = 3
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        if self.width < 1 or self.depth < 1:
            raise ModelConfigError(f"discriminator width/depth must be >= 1, got {self}")


class _Head(nn.Module):
    """3×3 conv + LeakyReLU, global average pool, linear -> one logit per image."""

    def __init__(self, width: int, negative_slope: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.LeakyReLU(negative_slope)
        self.fc = nn.Linear(width, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        pooled = self.act(self.conv(f)).mean(dim=(2, 3))  # [N, C]
        return self.fc(pooled).squeeze(1)  # [N]


class Discriminator(nn.Module):
    """forward(x_ir [N,1,H,W], x_vis [N,1,H,W]) -> {"ir": logits [N], "vis": logits [N]}.

    The trunk is shared (same low-level statistics for both judgements); each head judges only its
    own input: "ir" whether its input has the target's infrared saliency, "vis" the visible detail.
    No normalisation layers, so a critic step never depends on the batch composition.
    """

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i in range(cfg.depth):
            cout = cfg.width * 2**i
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(cfg.negative_slope)]
            cin = cout
        self.trunk = nn.Sequential(*layers)  # [N, 1, H, W] -> [N, C, H/2^depth, W/2^depth]
        self.ir_head = _Head(cin, cfg.negative_slope)
        self.vis_head = _Head(cin, cfg.negative_slope)

    def forward(self, x_ir: torch.Tensor, x_vis: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ir": self.ir_head(self.trunk(x_ir)), "vis": self.vis_head(self.trunk(x_vis))}
