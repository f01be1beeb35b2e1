"""One training iteration of bi-level dynamic learning (shared/design/method.md).

Lower level: each task k (discriminator D, semantic net S) takes `lower_steps` optimiser steps on
its own loss f_k with θ fixed (fused image detached). Upper level, per task on its val batch:

    F_k = fusion loss + task k's upper term,   a = ∇θ F_k,  u = ∇ω_k F_k,  v = ∇ω_k f_k,
    g_k = a + s·η·(⟨u, v⟩ / ‖v‖²)·∇θ f_k       (η = the task optimiser's lr, s = `implicit_sign`)

then θ steps on g = Σ_k w_k g_k, w from an Aggregator.

Sign and scale of the implicit term. One unrolled inner step ω' = ω − η∇ω f(θ, ω) gives
dF(θ, ω')/dθ = ∇θF − η·(∂²f/∂θ∂ω)·u. The rule replaces −(∂²f/∂θ∂ω)·u by s·(⟨u, v⟩/‖v‖²)·∇θf.
For a rank-one coupling f = c·½r², r = pᵀθ + qᵀω, ‖q‖ = 1: ∇θf = c·r·p, v = c·r·q and
∂²f/∂θ∂ω = c·p·qᵀ, so the exact term is −c·η·(qᵀu)·p and the rule gives s·η·(qᵀu)·p: they are
equal iff s = −c. Scale: ‖v‖² stands for the Gauss–Newton curvature, exact when ‖q‖ = 1.
Sign: for a convex f (c = +1, a minimised lower loss) the unrolled descent step needs s = −1.
method.md and the authors' code (architect_average2.py: ``GN_loss = −⟨F, f⟩/‖f‖²·f``, then
``g.sub_(η, ∇θ GN_loss)``) use s = +1, exact for concave f. s = +1 is the default, so the paper
ablation is reproduced; s = −1 is selectable by config. tests/training/test_bilevel.py checks
both (c = +1 with s = −1, c = −1 with s = +1) against torch.autograd through the unrolled step.

If a task's upper term has no path to ω_k, u = 0 and g_k = a (the term is then a plain joint
term); the step logs ‖u‖ per task so that case is visible.

The step never waits for the device: its logs are 0-d tensors (floats where they are host
values already), read back in one transfer per log interval by `logs_to_host`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from training.data.collate import Batch
from training.losses.errors import LossError
from training.losses.fusion import FusionLossConfig, fusion_loss, mask_for
from training.losses.gan import GanLossConfig, discriminator_loss, generator_loss
from training.losses.semantic import SemanticLossConfig, semantic_loss
from training.models.color import bgr_to_ycrcb, ycrcb_to_bgr

Fused = dict[str, torch.Tensor]
TaskName = Literal["discriminator", "semantic", "detection", "segmentation"]
Losses = dict[str, torch.Tensor]
Logs = dict[str, torch.Tensor | float]  # 0-d tensors stay on the device until logs_to_host
AllReduce = Callable[[list[torch.Tensor]], None]
AutocastFactory = Callable[[], AbstractContextManager[Any]]


@dataclass
class BilevelConfig:
    """How θ and the task nets are updated each iteration (YAML section ``bilevel``).

    Attributes:
        mode: "fusion_only" (plain fusion-loss step), "joint" (tasks train on f_k, θ on Σ (1/K)·∇θF_k,
            no implicit term) or "bilevel" (the hypergradient above, weights from `aggregation`).
        aggregation: "random" (authors': 0.5·softmax(z), z ~ N(0, I)), "balanced", "dwa" or "fixed".
        lower_steps: optimiser steps of each task net per iteration.
        task_weights: aggregation weights w_k for "fixed", by task name.
        dwa_temperature: T of DWA (Liu et al. 2019); larger → weights closer to uniform.
        dwa_window: DWA compares the mean upper loss of the last window iterations with the window
            before (per-iteration losses are too noisy for DWA's per-epoch ratio).
        implicit_sign: s in the rule above; +1 = paper, −1 = Gauss–Newton of the unrolled descent step.
        tasks: the tasks of modes joint/bilevel ("semantic" only where data.semantic_train is set;
            "detection"/"segmentation": the pretrained detector and the box-supervised seg head on
            the labelled split, training/tasks.py).
    """

    mode: Literal["fusion_only", "joint", "bilevel"] = "bilevel"
    tasks: list[TaskName] = field(default_factory=lambda: ["discriminator", "semantic"])
    aggregation: Literal["random", "balanced", "dwa", "fixed"] = "random"
    lower_steps: int = 1
    task_weights: dict[str, float] = field(default_factory=lambda: {"discriminator": 0.5, "semantic": 0.5})
    dwa_temperature: float = 2.0
    dwa_window: int = 50
    implicit_sign: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("fusion_only", "joint", "bilevel"):
            raise LossError(f"bilevel.mode must be fusion_only|joint|bilevel, got {self.mode!r}")
        if self.aggregation not in ("random", "balanced", "dwa", "fixed"):
            raise LossError(
                f"bilevel.aggregation must be random|balanced|dwa|fixed, got {self.aggregation!r}"
            )
        if self.lower_steps < 1 or self.dwa_window < 1 or self.dwa_temperature <= 0:
            raise LossError(f"bilevel.lower_steps, dwa_window and dwa_temperature must be > 0, got {self}")
        if len(set(self.tasks)) != len(self.tasks):
            raise LossError(f"bilevel.tasks names a task twice: {self.tasks}")
        if self.implicit_sign not in (1.0, -1.0):
            raise LossError(f"bilevel.implicit_sign must be 1 or -1, got {self.implicit_sign}")


# ---------------------------------------------------------------- fused image and tasks


def fuse(fusion_net: nn.Module, batch: Batch, fusion_cfg: FusionLossConfig) -> Fused:
    """Run F(θ) on a batch: {"y": fused Y [N,1,H,W], "bgr": fused BGR [N,3,H,W] (visible Cr/Cb,
    clamped to 0..1 as the exported graph does), "vis_y": visible Y, "mask": saliency mask}."""
    ycrcb = bgr_to_ycrcb(batch["visible"])
    vis_y = ycrcb[:, :1]
    y = fusion_net(batch["ir"], vis_y)
    bgr = ycrcb_to_bgr(torch.cat([y.to(ycrcb.dtype), ycrcb[:, 1:]], dim=1)).clamp(0.0, 1.0)
    return {"y": y, "bgr": bgr, "vis_y": vis_y, "mask": mask_for(batch["ir"], vis_y, fusion_cfg)}


class LowerTask(ABC):
    """A lower-level task: its net ω_k, optimiser, lower loss f_k and upper term (part of F_k).

    A task whose module has no trainable parameter (a frozen pretrained net, optimizer None) has
    no lower level: it only adds its upper term, so g_k = ∇θ F_k.
    """

    def __init__(self, name: str, module: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        self.name = name
        self.module = module
        self.optimizer = optimizer

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    @abstractmethod
    def lower_loss(self, fused: Fused, batch: Batch) -> Losses:
        """f_k on `fused` (the step detaches it for ω_k's own steps; the hypergradient does not)."""

    @abstractmethod
    def upper_loss(self, fused: Fused, batch: Batch) -> Losses:
        """Task k's term of F_k (weighted "total"); gradients flow to θ through `fused`."""


class DiscriminatorTask(LowerTask):
    """D(ω_D): lower = critic loss, upper = weighted adversarial (generator) loss."""

    def __init__(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        cfg: GanLossConfig,
        name: str = "discriminator",
    ) -> None:
        super().__init__(name, module, optimizer)
        self.cfg = cfg

    def lower_loss(self, fused: Fused, batch: Batch) -> Losses:
        return discriminator_loss(
            self.module, fused["y"], batch["ir"], fused["vis_y"], fused["mask"], self.cfg
        )

    def upper_loss(self, fused: Fused, batch: Batch) -> Losses:
        return generator_loss(self.module, fused["y"], batch["ir"], fused["vis_y"], fused["mask"], self.cfg)


class SemanticTask(LowerTask):
    """S(ω_S) on the fused BGR image: lower = semantic loss, upper = cfg.weight × semantic loss."""

    def __init__(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        cfg: SemanticLossConfig,
        name: str = "semantic",
    ) -> None:
        super().__init__(name, module, optimizer)
        self.cfg = cfg
        strides = getattr(module, "strides", None)
        if not isinstance(strides, (list, tuple)):
            raise LossError("SemanticTask needs a module with a .strides list (its detection strides)")
        self.strides = [int(s) for s in strides]

    def lower_loss(self, fused: Fused, batch: Batch) -> Losses:
        return semantic_loss(self.module(fused["bgr"]), batch, self.cfg, strides=self.strides)

    def upper_loss(self, fused: Fused, batch: Batch) -> Losses:
        terms = self.lower_loss(fused, batch)
        return {**terms, "total": self.cfg.weight * terms["total"]}


# ---------------------------------------------------------------- aggregators


class Aggregator(ABC):
    """Turns per-task hypergradients into weights w_k (g = Σ_k w_k g_k)."""

    @abstractmethod
    def weights(
        self, grads: dict[str, torch.Tensor], g_fusion: torch.Tensor, losses: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor | float]:
        """grads: flat g_k per task; g_fusion: flat ∇θ fusion loss; losses: each task's upper term (0-d)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state  # stateless by default


class RandomAggregator(Aggregator):
    """The authors' rule: w = 0.5·softmax(z), z ~ N(0, I) each iteration.

    z is drawn from the given generator so every DDP rank (seeded alike) draws the same weights.
    """

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def weights(
        self, grads: dict[str, torch.Tensor], g_fusion: torch.Tensor, losses: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor | float]:
        z = torch.randn(len(grads), generator=self.generator)
        return dict(zip(grads, (0.5 * torch.softmax(z, dim=0)).tolist(), strict=True))


class BalancedAggregator(Aggregator):
    """Rescale each g_k to ‖∇θ fusion loss‖, then average: w_k = ‖g_fusion‖ / (K·‖g_k‖).

    No task can dominate θ's step by gradient scale alone; the step size stays that of the
    fusion loss, the primary goal.
    """

    def weights(
        self, grads: dict[str, torch.Tensor], g_fusion: torch.Tensor, losses: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor | float]:
        ref, k = g_fusion.norm(), len(grads)
        norms = {name: g.norm() for name, g in grads.items()}
        return {name: torch.where(n > 0, ref / (k * n), 0.0) for name, n in norms.items()}


class DwaAggregator(Aggregator):
    """Dynamic Weight Average (Liu et al. 2019): w_k = softmax_k(r_k / T), r_k = recent loss ratio.

    r_k = mean(task k's upper loss over the last `window` iterations) / mean(over the window before).
    A task whose loss falls slowly (r near or above 1) gets more weight. Weights sum to 1 (DWA's K
    scale is dropped so θ's step stays on the fusion loss's scale); uniform until 2·window losses
    are seen. The weights of iteration t use losses up to t−1, as in DWA.
    """

    def __init__(self, temperature: float, window: int) -> None:
        self.temperature = temperature
        self.window = window
        self.history: dict[str, deque[torch.Tensor]] = {}

    def weights(
        self, grads: dict[str, torch.Tensor], g_fusion: torch.Tensor, losses: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor | float]:
        w = self.window
        hist = {name: list(self.history.get(name, ())) for name in grads}
        out: dict[str, torch.Tensor | float]
        if all(len(h) == 2 * w for h in hist.values()):
            recent = torch.stack([torch.stack(h).view(2, w).sum(1) for h in hist.values()])  # [K, 2]
            ratios = recent[:, 1] / recent[:, 0].clamp_min(1e-12)
            out = dict(zip(grads, torch.softmax(ratios / self.temperature, dim=0).unbind(), strict=True))
        else:
            out = {name: 1.0 / len(grads) for name in grads}
        for name, value in losses.items():
            loss = torch.as_tensor(value, dtype=torch.float32).detach().clamp_min(1e-12)
            self.history.setdefault(name, deque(maxlen=2 * w)).append(loss)
        return out

    def state_dict(self) -> dict[str, Any]:  # floats: the checkpoint holds plain types
        return {"history": {name: torch.stack(list(h)).tolist() for name, h in self.history.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = {
            name: deque(map(torch.tensor, h), maxlen=2 * self.window) for name, h in state["history"].items()
        }


class FixedAggregator(Aggregator):
    """Constant weights from the config's task_weights."""

    def __init__(self, task_weights: dict[str, float]) -> None:
        self.task_weights = dict(task_weights)

    def weights(
        self, grads: dict[str, torch.Tensor], g_fusion: torch.Tensor, losses: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor | float]:
        missing = [name for name in grads if name not in self.task_weights]
        if missing:
            raise LossError(
                f"bilevel.task_weights has no weight for task(s) {missing}; add them to the config"
            )
        return {name: float(self.task_weights[name]) for name in grads}


def make_aggregator(cfg: BilevelConfig, generator: torch.Generator) -> Aggregator:
    """The aggregator named by cfg.aggregation (`generator` feeds "random")."""
    if cfg.aggregation == "random":
        return RandomAggregator(generator)
    if cfg.aggregation == "balanced":
        return BalancedAggregator()
    if cfg.aggregation == "dwa":
        return DwaAggregator(cfg.dwa_temperature, cfg.dwa_window)
    return FixedAggregator(cfg.task_weights)


# ---------------------------------------------------------------- the step


def _flat_grad(loss: torch.Tensor, params: list[nn.Parameter], *, retain_graph: bool = False) -> torch.Tensor:
    """∇params loss as one flat vector (the parameters' dtype); parameters it does not reach get 0."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]
    )


def _optimizer_step(
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    all_reduce: AllReduce | None,
    clip_grad_norm: float | None,
) -> None:
    """all_reduce hook (same tensor list on every rank), clipping, step."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if all_reduce is not None:
        all_reduce([p.grad for p in params if p.grad is not None])
    if clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(params, clip_grad_norm)
    optimizer.step()


def _write_grad(params: list[nn.Parameter], flat: torch.Tensor) -> None:
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).to(p.dtype).clone()
        offset += p.numel()


def _log(logs: Logs, prefix: str, losses: Losses) -> None:
    logs.update({f"{prefix}/{name}": value.detach() for name, value in losses.items()})


def logs_to_host(steps: list[Logs]) -> list[dict[str, float]]:
    """Per-step logs as floats, with one device-to-host transfer for all of them."""
    tensors = [v.detach().float() for logs in steps for v in logs.values() if isinstance(v, torch.Tensor)]
    values = iter(torch.stack(tensors).tolist() if tensors else [])
    return [
        {k: next(values) if isinstance(v, torch.Tensor) else float(v) for k, v in logs.items()}
        for logs in steps
    ]


def _lower_level(
    task: LowerTask,
    fused: Fused,
    batch: Batch,
    cfg: BilevelConfig,
    autocast: AutocastFactory,
    all_reduce: AllReduce | None,
    clip_grad_norm: float | None,
    logs: Logs,
) -> None:
    params = task.parameters()
    if task.optimizer is None:
        raise LossError(f"task {task.name} has trainable parameters but no optimizer")
    for _ in range(cfg.lower_steps):
        task.optimizer.zero_grad(set_to_none=True)
        with autocast():
            losses = task.lower_loss(fused, batch)
        losses["total"].backward()
        _optimizer_step(params, task.optimizer, all_reduce, clip_grad_norm)
    _log(logs, f"{task.name}/lower", losses)


def _task_gradient(
    task: LowerTask,
    fusion_net: nn.Module,
    theta: list[nn.Parameter],
    fusion_cfg: FusionLossConfig,
    batch: Batch,
    cfg: BilevelConfig,
    autocast: AutocastFactory,
    logs: Logs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """g_k (flat) and the value of task k's upper term (0-d), on its val batch."""
    with autocast():
        fused = fuse(fusion_net, batch, fusion_cfg)
        fusion_terms = fusion_loss(fused["y"], batch["ir"], fused["vis_y"], fusion_cfg, mask=fused["mask"])
        upper = task.upper_loss(fused, batch)
    big_f = fusion_terms["total"] + upper["total"]
    _log(logs, f"{task.name}/upper", upper)
    logs[f"{task.name}/upper/fusion_total"] = fusion_terms["total"].detach()
    if cfg.mode == "joint" or task.optimizer is None:  # no ω_k: no implicit term
        return _flat_grad(big_f, theta), upper["total"].detach()
    with autocast():
        lower = task.lower_loss(fused, batch)  # f_k with the graph to θ kept: ∇θ f_k is needed
    eta = float(task.optimizer.param_groups[0]["lr"])
    g, parts = hypergradient(big_f, lower["total"], theta, task.parameters(), eta, cfg.implicit_sign)
    logs.update({f"{task.name}/{name}": value for name, value in parts.items()})
    return g, upper["total"].detach()


def hypergradient(
    upper: torch.Tensor,
    lower: torch.Tensor,
    theta: list[nn.Parameter],
    omega: list[nn.Parameter],
    eta: float,
    sign: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """g = a + sign·η·(⟨u, v⟩/‖v‖²)·∇θ f (module docstring) as a flat vector over θ, and its parts.

    `upper` (F_k) must keep its graph to θ and ω until both gradients are taken (it is retained
    once); `lower` (f_k) must reach θ through a non-detached fused image. If ‖v‖ = 0 (ω at a
    stationary point of f) the implicit term is 0.
    """
    a_u = _flat_grad(upper, theta + omega, retain_graph=True)
    f_grad = _flat_grad(lower, theta + omega)
    n = sum(p.numel() for p in theta)
    a, u, f_theta, v = a_u[:n], a_u[n:], f_grad[:n], f_grad[n:]
    # float64: ‖v‖² of small gradients can underflow float32 and blow the ratio up.
    u64, v64 = u.double(), v.double()
    vv = v64 @ v64
    coef = torch.where(vv > 0, sign * eta * (u64 @ v64) / vv, 0.0)
    parts = {"u_norm": u.norm(), "v_norm": vv.sqrt(), "implicit_coef": coef}
    return a + coef.to(a.dtype) * f_theta, parts


def bilevel_step(
    fusion_net: nn.Module,
    fusion_opt: torch.optim.Optimizer,
    fusion_cfg: FusionLossConfig,
    tasks: Iterable[LowerTask],
    fusion_batch: Batch,
    task_batches: dict[str, tuple[Batch, Batch]],
    cfg: BilevelConfig,
    aggregator: Aggregator,
    *,
    all_reduce: AllReduce | None = None,
    autocast: AutocastFactory = nullcontext,
    clip_grad_norm: float | None = None,
) -> Logs:
    """One iteration (module docstring); returns every named loss term, w_k, ‖g_k‖, cos(g_k, g_fusion).

    The logs include "grad_norm" (‖g‖ before clipping): the caller checks it is finite when it
    reads the logs back (a check here would wait for the device every step).

    Args:
        fusion_batch: the batch of the fusion-only step; in the other modes its fusion-loss
            gradient g_fusion is the reference for "balanced" and for the cos logs.
        task_batches: per task name, (train batch for the lower level, val batch for the upper).
        all_reduce: called with the list of .grad tensors before every optimiser step (DDP mean).
        autocast: factory of the autocast context wrapped around every forward.
        clip_grad_norm: max global grad norm applied before every optimiser step (None = off).
    """
    theta = [p for p in fusion_net.parameters() if p.requires_grad]
    tasks = list(tasks) if cfg.mode != "fusion_only" else []
    missing = [t.name for t in tasks if t.name not in task_batches]
    if missing:
        raise LossError(f"bilevel_step: no (train, val) batches for task(s) {missing}")
    logs: Logs = {}
    with autocast():
        fused = fuse(fusion_net, fusion_batch, fusion_cfg)
        fusion_terms = fusion_loss(
            fused["y"], fusion_batch["ir"], fused["vis_y"], fusion_cfg, mask=fused["mask"]
        )
    _log(logs, "fusion", fusion_terms)
    g_fusion = _flat_grad(fusion_terms["total"], theta)
    logs["fusion/grad_norm"] = g_fusion.norm()
    g = g_fusion
    if tasks:
        for task in (t for t in tasks if t.optimizer is not None):  # lower level: θ fixed, fused detached
            train_batch = task_batches[task.name][0]
            with torch.no_grad(), autocast():
                fused_train = {k: v.detach() for k, v in fuse(fusion_net, train_batch, fusion_cfg).items()}
            _lower_level(task, fused_train, train_batch, cfg, autocast, all_reduce, clip_grad_norm, logs)
        grads, uppers = {}, {}
        for task in tasks:  # upper level
            val_batch = task_batches[task.name][1]
            grads[task.name], uppers[task.name] = _task_gradient(
                task, fusion_net, theta, fusion_cfg, val_batch, cfg, autocast, logs
            )
        weights: dict[str, torch.Tensor | float]
        if cfg.mode == "joint":
            weights = {name: 1.0 / len(grads) for name in grads}
        else:
            weights = aggregator.weights(grads, g_fusion, uppers)
        g = sum((weights[name] * gk for name, gk in grads.items()), torch.zeros_like(g_fusion))
        for name, gk in grads.items():
            logs[f"{name}/weight"] = weights[name]
            logs[f"{name}/grad_norm"] = gk.norm()
            logs[f"{name}/cos_fusion"] = F.cosine_similarity(gk, g_fusion, dim=0)
    logs["grad_norm"] = g.norm()
    _write_grad(theta, g)
    _optimizer_step(theta, fusion_opt, all_reduce, clip_grad_norm)
    return logs
