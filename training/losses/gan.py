"""GAN losses between the discriminator D(ω_D) and the fusion network (the visual-effect task).

Masking: D's IR head sees m·x and its visible head (1−m)·x, where m is the saliency mask. So
the IR head judges only the salient (thermal-target) region and the visible head only the rest.
Real x = the saliency target m·IR + (1−m)·VIS_Y, fake x = the fused luminance: a fused image
equal to the target is indistinguishable, so the GAN and the intensity term agree on the optimum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from training.losses.errors import LossError
from training.losses.saliency import saliency_target

Critic = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class GanLossConfig:
    """GAN loss kind and the adversarial term's weight in the fusion net's upper loss (``gan_loss``).

    Attributes:
        kind: "lsgan" (least squares, targets 1 real / 0 fake) or "bce" (non-saturating, logits).
        weight: multiplies the generator (adversarial) term in F_D; the critic's own loss is unweighted.
    """

    kind: Literal["lsgan", "bce"] = "lsgan"
    weight: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in ("lsgan", "bce"):
            raise LossError(f"gan_loss.kind must be 'lsgan' or 'bce', got {self.kind!r}")
        if self.weight < 0:
            raise LossError(f"gan_loss.weight must be >= 0, got {self.weight}")


def _judge(d: Critic, x: torch.Tensor, m: torch.Tensor) -> dict[str, torch.Tensor]:
    return d(m * x, (1.0 - m) * x)


def _criterion(logits: torch.Tensor, real: bool, kind: str) -> torch.Tensor:
    logits = logits.float()
    if kind == "lsgan":
        return 0.5 * (logits - float(real)).pow(2).mean()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


def discriminator_loss(
    d: Critic,
    fused_y: torch.Tensor,
    ir: torch.Tensor,
    vis_y: torch.Tensor,
    m: torch.Tensor,
    cfg: GanLossConfig,
) -> dict[str, torch.Tensor]:
    """Critic loss f_D: real = masked saliency target, fake = masked fused (detach it for ω_D steps).

    Returns "ir" and "vis" (each head's real+fake loss) and "total" = their sum.
    """
    real = _judge(d, saliency_target(ir, vis_y, m), m)
    fake = _judge(d, fused_y, m)
    out = {
        head: _criterion(real[head], True, cfg.kind) + _criterion(fake[head], False, cfg.kind)
        for head in ("ir", "vis")
    }
    return {**out, "total": out["ir"] + out["vis"]}


def generator_loss(
    d: Critic,
    fused_y: torch.Tensor,
    ir: torch.Tensor,
    vis_y: torch.Tensor,
    m: torch.Tensor,
    cfg: GanLossConfig,
) -> dict[str, torch.Tensor]:
    """Adversarial term for θ: the masked fused image should be judged real by both heads.

    Returns "adv_ir", "adv_vis" (unweighted) and "total" = cfg.weight · their sum. `ir`/`vis_y` are
    not needed by the term itself; they are taken so both GAN losses share one signature.
    """
    del ir, vis_y
    fake = _judge(d, fused_y, m)
    out = {f"adv_{head}": _criterion(fake[head], True, cfg.kind) for head in ("ir", "vis")}
    return {**out, "total": cfg.weight * (out["adv_ir"] + out["adv_vis"])}
