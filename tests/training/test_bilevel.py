"""The bi-level step: hypergradient against closed forms and autograd, phases, aggregators."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from fusion_node.pipeline.pair_files import find_pairs, read_pair
from training.bilevel import (
    BalancedAggregator,
    BilevelConfig,
    DiscriminatorTask,
    DwaAggregator,
    LowerTask,
    RandomAggregator,
    SemanticTask,
    bilevel_step,
    hypergradient,
)
from training.losses import FusionLossConfig, GanLossConfig, LossError, SemanticLossConfig
from training.models.discriminator import Discriminator, DiscriminatorConfig
from training.models.fusion import FusionNetConfig, build_fusion_net
from training.models.semantic import SemanticNet, SemanticNetConfig

Batch = dict[str, Any]

# ------------------------------------------------------------------ (a) the hypergradient


def test_hypergradient_matches_closed_form_on_quadratics() -> None:
    """f = ½‖ω − Aθ‖², F = ½‖Bθ − t‖² + cᵀω + ½‖ω‖²: every piece of g is known in closed form."""
    gen = torch.Generator().manual_seed(0)
    a_mat, b_mat = (
        torch.randn(2, 3, generator=gen, dtype=torch.float64),
        torch.randn(4, 3, generator=gen, dtype=torch.float64),
    )
    t, c = (
        torch.randn(4, generator=gen, dtype=torch.float64),
        torch.randn(2, generator=gen, dtype=torch.float64),
    )
    theta = nn.Parameter(torch.randn(3, generator=gen, dtype=torch.float64))
    omega = nn.Parameter(torch.randn(2, generator=gen, dtype=torch.float64))
    eta = 0.3
    lower = 0.5 * (omega - a_mat @ theta).pow(2).sum()
    upper = 0.5 * (b_mat @ theta - t).pow(2).sum() + c @ omega + 0.5 * omega.pow(2).sum()
    g, parts = hypergradient(upper, lower, [theta], [omega], eta, sign=1.0)

    th, om = theta.detach(), omega.detach()
    a = b_mat.T @ (b_mat @ th - t)
    u = c + om
    v = om - a_mat @ th
    f_theta = -a_mat.T @ v
    expected = a + eta * (u @ v) / (v @ v) * f_theta
    assert torch.allclose(g, expected, atol=1e-6, rtol=0)
    assert parts["u_norm"] == pytest.approx(float(u.norm()))
    assert not torch.allclose(g, a, atol=1e-3)  # the implicit term is really there


@pytest.mark.parametrize("curvature", [1.0, -1.0])
def test_rank_one_coupling_equals_gradient_through_unrolled_step(curvature: float) -> None:
    """f = c·½(pᵀθ + qᵀω)², ‖q‖ = 1, F = ½‖θ − t‖² + dᵀω: g with s = −c is EXACTLY
    d/dθ F(θ, ω − η∇ω f(θ, ω)) (derivation in training/bilevel.py); s = +c is not."""
    gen = torch.Generator().manual_seed(1)
    p, t = (
        torch.randn(3, generator=gen, dtype=torch.float64),
        torch.randn(3, generator=gen, dtype=torch.float64),
    )
    q = torch.randn(2, generator=gen, dtype=torch.float64)
    q = q / q.norm()
    d = torch.randn(2, generator=gen, dtype=torch.float64)
    theta = nn.Parameter(torch.randn(3, generator=gen, dtype=torch.float64))
    omega = nn.Parameter(torch.randn(2, generator=gen, dtype=torch.float64))
    eta = 0.1

    def lower_f() -> torch.Tensor:
        return curvature * 0.5 * (p @ theta + q @ omega) ** 2

    def upper_f(w: torch.Tensor) -> torch.Tensor:
        return 0.5 * (theta - t).pow(2).sum() + d @ w

    (grad_w,) = torch.autograd.grad(lower_f(), omega, create_graph=True)
    (exact,) = torch.autograd.grad(upper_f(omega - eta * grad_w), theta)

    g, _ = hypergradient(upper_f(omega), lower_f(), [theta], [omega], eta, sign=-curvature)
    assert torch.allclose(g, exact, atol=1e-6, rtol=0)
    g_wrong, _ = hypergradient(upper_f(omega), lower_f(), [theta], [omega], eta, sign=curvature)
    assert not torch.allclose(g_wrong, exact, atol=1e-3)


def test_hypergradient_without_path_to_omega_is_plain_gradient() -> None:
    theta, omega = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    upper = (theta**2).sum()  # no path to ω: u = 0
    lower = ((omega - theta) ** 2).sum()
    g, parts = hypergradient(upper, lower, [theta], [omega], 0.5)
    assert parts["u_norm"] == 0.0 and parts["implicit_coef"] == 0.0
    assert torch.allclose(g, 2 * theta.detach())


# ------------------------------------------------------------------ tiny nets and real data


class TinyFusion(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(torch.cat([ir, vis_y], dim=1)))  # [N,1,H,W]


class TinyCritic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Conv2d(1, 4, 4, stride=4)
        self.ir = nn.Linear(4, 1)
        self.vis = nn.Linear(4, 1)

    def forward(self, x_ir: torch.Tensor, x_vis: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "ir": self.ir(torch.relu(self.trunk(x_ir)).mean(dim=(2, 3))).squeeze(1),
            "vis": self.vis(torch.relu(self.trunk(x_vis)).mean(dim=(2, 3))).squeeze(1),
        }


class TinySemantic(nn.Module):
    """One detection level (stride 8) and a full-resolution segmentation head."""

    strides = (8,)

    def __init__(self, classes: int = 2, seg_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 8, stride=8)
        self.cls = nn.Conv2d(8, classes, 1)
        self.reg = nn.Conv2d(8, 4, 1)
        self.ctr = nn.Conv2d(8, 1, 1)
        self.seg = nn.Conv2d(3, seg_classes, 3, padding=1)

    def forward(self, bgr: torch.Tensor) -> dict[str, Any]:
        f = torch.relu(self.stem(bgr))
        return {
            "cls": [self.cls(f)],
            "reg": [nn.functional.softplus(self.reg(f))],
            "ctr": [self.ctr(f)],
            "seg": self.seg(bgr),
        }


def _load_pairs(data_dir: Path, size: int = 32) -> Batch:
    pairs = find_pairs(data_dir / "roadscene")[:2]
    irs, vis = [], []
    for ir, vi in map(read_pair, pairs):
        irs.append(cv2.resize(ir, (size, size), interpolation=cv2.INTER_AREA)[None])
        vis.append(cv2.resize(vi, (size, size), interpolation=cv2.INTER_AREA).transpose(2, 0, 1))
    mask = np.zeros((len(pairs), size, size), np.int64)
    mask[:, size // 2 :] = 1
    mask[:, :, : size // 4] = 2
    mask[:, :2] = 255
    return {
        "ir": torch.from_numpy(np.stack(irs)).float() / 255,
        "visible": torch.from_numpy(np.stack(vis)).float() / 255,
        "boxes": [torch.tensor([[2.0, 3.0, 20.0, 25.0]]), torch.zeros(0, 4)],
        "labels": [torch.tensor([1]), torch.zeros(0, dtype=torch.long)],
        "mask": torch.from_numpy(mask),
        "names": [pair.name for pair in pairs],
    }


@pytest.fixture()
def batch(data_dir: Path) -> dict[str, object]:
    return _load_pairs(data_dir)


class Recorder:
    """Records, at every optimizer step, the grads going in and the parameters coming out."""

    def __init__(self, opt: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
        self.grads: list[list[torch.Tensor]] = []
        self.after: list[list[torch.Tensor]] = []
        opt.register_step_pre_hook(
            lambda *_: self.grads.append([p.grad.clone() for p in params if p.grad is not None])
        )
        opt.register_step_post_hook(lambda *_: self.after.append([p.detach().clone() for p in params]))


@dataclass
class Rig:
    """Tiny nets, SGD optimisers, the two tasks and a step recorder per optimiser."""

    nets: dict[str, nn.Module]
    fusion_opt: torch.optim.Optimizer
    tasks: list[LowerTask]
    rec: dict[str, Recorder]
    cfg: BilevelConfig

    def step(
        self, batch: Batch, all_reduce: Callable[[list[torch.Tensor]], None] | None = None
    ) -> dict[str, float]:
        first = {k: v[:1] for k, v in batch.items()}  # D trains on one image, is judged on the other
        second = {k: v[1:] for k, v in batch.items()}
        return bilevel_step(
            self.nets["fusion"],
            self.fusion_opt,
            FusionLossConfig(saliency_bg_sigma=4.0),
            self.tasks,
            batch,
            {"discriminator": (first, second), "semantic": (batch, batch)},
            self.cfg,
            RandomAggregator(torch.Generator().manual_seed(3)),
            all_reduce=all_reduce,
        )


def _rig(mode: Literal["fusion_only", "joint", "bilevel"], lower_steps: int = 1) -> Rig:
    torch.manual_seed(0)
    nets: dict[str, nn.Module] = {
        "fusion": TinyFusion(),
        "discriminator": TinyCritic(),
        "semantic": TinySemantic(),
    }
    opts = {
        name: torch.optim.SGD(net.parameters(), lr=0.1 if name == "fusion" else 0.05)
        for name, net in nets.items()
    }
    tasks: list[LowerTask] = [
        DiscriminatorTask(nets["discriminator"], opts["discriminator"], GanLossConfig(weight=0.5)),
        SemanticTask(
            nets["semantic"], opts["semantic"], SemanticLossConfig(scale_ranges=[[0.0, math.inf]], weight=0.5)
        ),
    ]
    rec = {name: Recorder(opt, list(nets[name].parameters())) for name, opt in opts.items()}
    return Rig(nets, opts["fusion"], tasks, rec, BilevelConfig(mode=mode, lower_steps=lower_steps))


# ------------------------------------------------------------------ (b) which nets each phase updates


@pytest.mark.parametrize("mode", ["fusion_only", "joint", "bilevel"])
def test_each_phase_updates_only_its_nets(
    mode: Literal["fusion_only", "joint", "bilevel"], batch: Batch
) -> None:
    rig = _rig(mode, lower_steps=2)
    nets, rec = rig.nets, rig.rec
    before = {n: [p.detach().clone() for p in m.parameters()] for n, m in nets.items()}
    reduced: list[int] = []
    logs = rig.step(batch, all_reduce=lambda grads: reduced.append(len(grads)))

    # θ: one step, every parameter with a non-zero gradient, and it moved
    assert len(rec["fusion"].grads) == 1
    assert all(float(g.abs().sum()) > 0 for g in rec["fusion"].grads[0])
    assert any(
        not torch.equal(a, b) for a, b in zip(before["fusion"], nets["fusion"].parameters(), strict=True)
    )
    for name in ("discriminator", "semantic"):
        params = list(nets[name].parameters())
        if mode == "fusion_only":  # no task net is touched
            assert rec[name].grads == []
            assert all(torch.equal(a, b) for a, b in zip(before[name], params, strict=True))
            continue
        assert len(rec[name].grads) == 2  # lower_steps optimiser steps, nothing else
        assert all(float(g.abs().sum()) > 0 for step in rec[name].grads for g in step)
        # after the last lower step nothing (no upper step) changed ω or its .grad
        assert all(torch.equal(a, b) for a, b in zip(rec[name].after[-1], params, strict=True))
        assert all(
            p.grad is not None and torch.equal(g, p.grad)
            for g, p in zip(rec[name].grads[-1], params, strict=True)
        )
    # the hook ran before EVERY optimiser step, with all of that net's grads: D, D, S, S, then θ
    sizes = {n: len(list(m.parameters())) for n, m in nets.items()}
    lower = [sizes["discriminator"]] * 2 + [sizes["semantic"]] * 2
    assert reduced == ([] if mode == "fusion_only" else lower) + [sizes["fusion"]]
    assert ("discriminator/implicit_coef" in logs) == (mode == "bilevel")
    if mode != "fusion_only":
        assert {
            "semantic/weight",
            "semantic/grad_norm",
            "semantic/cos_fusion",
            "semantic/lower/det_box",
        } <= set(logs)


def test_joint_weights_are_equal_and_random_weights_are_paper_rule(batch: Batch) -> None:
    joint = _rig("joint").step(batch)
    assert joint["discriminator/weight"] == joint["semantic/weight"] == 0.5
    bilevel = _rig("bilevel").step(batch)
    z = torch.randn(2, generator=torch.Generator().manual_seed(3))
    expected = (0.5 * torch.softmax(z, dim=0)).tolist()
    assert [bilevel["discriminator/weight"], bilevel["semantic/weight"]] == pytest.approx(expected)


def test_fusion_only_loss_decreases(batch: Batch) -> None:
    rig = _rig("fusion_only")
    rig.fusion_opt = torch.optim.Adam(rig.nets["fusion"].parameters(), lr=0.05)
    totals = [rig.step(batch)["fusion/total"] for _ in range(8)]
    assert totals[-1] < 0.9 * totals[0]


def test_semantic_lower_loss_decreases(batch: Batch) -> None:
    rig = _rig("joint")
    for task in rig.tasks:
        task.optimizer = torch.optim.Adam(task.module.parameters(), lr=0.02)
    totals = [rig.step(batch)["semantic/lower/total"] for _ in range(6)]
    assert totals[-1] < totals[0]


def test_missing_task_batch_is_named(batch: Batch) -> None:
    rig = _rig("bilevel")
    with pytest.raises(LossError, match="semantic"):
        bilevel_step(
            rig.nets["fusion"],
            rig.fusion_opt,
            FusionLossConfig(),
            rig.tasks,
            batch,
            {"discriminator": (batch, batch)},
            rig.cfg,
            BalancedAggregator(),
        )


# ------------------------------------------------------------------ (c) aggregators


def test_random_weights_sum_to_half_and_reproduce() -> None:
    grads = {"a": torch.ones(3), "b": torch.ones(3), "c": torch.ones(3)}
    w1 = RandomAggregator(torch.Generator().manual_seed(7)).weights(grads, torch.ones(3), {})
    w2 = RandomAggregator(torch.Generator().manual_seed(7)).weights(grads, torch.ones(3), {})
    w3 = RandomAggregator(torch.Generator().manual_seed(8)).weights(grads, torch.ones(3), {})
    assert sum(w1.values()) == pytest.approx(0.5)
    assert w1 == w2 and w1 != w3


def test_balanced_equalises_norms_to_fusion_gradient() -> None:
    grads = {"a": torch.tensor([3.0, 4.0]), "b": torch.tensor([0.0, 0.1])}
    g_fusion = torch.tensor([1.0, 1.0])
    w = BalancedAggregator().weights(grads, g_fusion, {})
    scaled = [float((w[k] * g).norm()) for k, g in grads.items()]
    assert scaled == pytest.approx([float(g_fusion.norm()) / 2] * 2)


def test_dwa_weights_react_to_loss_rates() -> None:
    agg = DwaAggregator(temperature=0.5, window=3)
    grads = {"fast": torch.ones(1), "slow": torch.ones(1)}
    seen = []
    for i in range(7):
        seen.append(agg.weights(grads, torch.ones(1), {"fast": 0.5**i, "slow": 1.0}))
    assert seen[0] == {"fast": 0.5, "slow": 0.5}  # not enough history yet
    assert sum(seen[-1].values()) == pytest.approx(1.0)
    assert seen[-1]["slow"] > seen[-1]["fast"]  # the task that stopped improving gets more weight
    restored = DwaAggregator(temperature=0.5, window=3)
    restored.load_state_dict(agg.state_dict())
    assert restored.weights(grads, torch.ones(1), {}) == agg.weights(grads, torch.ones(1), {})


def test_config_rejects_unknown_mode() -> None:
    with pytest.raises(LossError, match=r"bilevel\.mode"):
        BilevelConfig(mode="alternating")  # type: ignore[arg-type]


def test_one_bilevel_step_with_the_project_nets(data_dir: Path) -> None:
    """The real FusionNet / Discriminator / SemanticNet (training/models) through one bi-level step."""
    torch.manual_seed(0)
    batch = _load_pairs(data_dir, size=32)
    fusion = build_fusion_net(FusionNetConfig())
    critic = Discriminator(DiscriminatorConfig())
    semantic = SemanticNet(SemanticNetConfig(num_classes=2, num_seg_classes=3))
    tasks: list[LowerTask] = [
        DiscriminatorTask(critic, torch.optim.Adam(critic.parameters(), lr=1e-4), GanLossConfig()),
        SemanticTask(semantic, torch.optim.Adam(semantic.parameters(), lr=1e-3), SemanticLossConfig()),
    ]
    before = [p.detach().clone() for p in fusion.parameters()]
    logs = bilevel_step(
        fusion,
        torch.optim.Adam(fusion.parameters(), lr=1e-3),
        FusionLossConfig(),
        tasks,
        batch,
        {"discriminator": (batch, batch), "semantic": (batch, batch)},
        BilevelConfig(mode="bilevel", aggregation="balanced"),
        BalancedAggregator(),
    )
    assert all(math.isfinite(v) for v in logs.values())
    assert logs["discriminator/u_norm"] > 0 and logs["semantic/u_norm"] > 0  # both upper terms reach ω_k
    assert any(not torch.equal(a, b) for a, b in zip(before, fusion.parameters(), strict=True))
