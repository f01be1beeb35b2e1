"""fusion-train: the bi-level training loop, top to bottom (nanoGPT style).

fusion-train --config training/configs/realtime.yaml [train.max_steps=1000 data.fusion_train=...]
fusion-train --resume runs/realtime/ckpt.pt [train.max_steps=40000]
torchrun --nproc_per_node=4 -m training.train --config training/configs/realtime.yaml
fusion-train --config training/configs/paper.yaml --summary
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from training.bilevel import (
    DiscriminatorTask,
    Logs,
    LowerTask,
    SemanticTask,
    bilevel_step,
    logs_to_host,
    make_aggregator,
)
from training.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from training.config import (
    ConfigError,
    ExperimentConfig,
    OptimConfig,
    from_dict,
    load_config,
    save_config,
    to_dict,
)
from training.data import DataError, build_datasets
from training.data.cache import preload
from training.data.collate import Batch
from training.data.split import training_set
from training.data.stream import BatchStream, SeededDataset
from training.distributed import (
    DistributedError,
    broadcast_parameters,
    cleanup,
    gradient_sync,
    init_distributed,
)
from training.export import load_detector
from training.losses import LossError
from training.metrics.fusion import fusion_metrics
from training.models import complexity
from training.models.color import bgr_to_ycrcb, ycrcb_to_bgr
from training.models.discriminator import Discriminator
from training.models.errors import ModelConfigError
from training.models.fusion import build_fusion_net
from training.models.seghead import SegHead
from training.models.semantic import SemanticNet
from training.paths import data_path
from training.tasks import DetectionTask, SegmentationTask, fused_detector, head_parameters

CKPT_NAME = "ckpt.pt"


def main(argv: list[str] | None = None) -> int:
    """Console entry point; a subsystem's error is printed as `ERROR: ...` with exit code 1."""
    args = parse_args(argv)
    try:
        ckpt = load_checkpoint(args.resume) if args.resume else None
        if args.config:
            cfg = load_config(args.config, args.overrides)
        elif ckpt is not None:
            cfg = from_dict(ckpt["config"], args.overrides)
        else:
            raise ConfigError("give --config FILE (or --resume CKPT to continue a run)")
        if args.summary:
            print_summary(cfg)
            return 0
        train(cfg, ckpt)
    except (ConfigError, CheckpointError, DataError, DistributedError, ModelConfigError, LossError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fusion-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="experiment YAML (training/configs/*.yaml)")
    parser.add_argument(
        "--resume", type=Path, help="checkpoint to continue exactly (its config unless --config)"
    )
    parser.add_argument("--summary", action="store_true", help="print params/GMAC of each net and exit")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.max_steps=100")
    return parser.parse_args(argv)


@dataclass
class TrainResult:
    """What a run leaves in memory: the per-step logged terms of this rank, the trained nets and
    the iterations per second of each log interval (what benchmarks/bench_train.py reports)."""

    history: list[dict[str, float]] = field(default_factory=list)
    it_per_s: list[float] = field(default_factory=list)
    models: dict[str, nn.Module | None] = field(default_factory=dict)


def train(cfg: ExperimentConfig, ckpt: dict[str, Any] | None = None) -> TrainResult:
    """Run one experiment, or continue `ckpt` exactly; every rank of a torchrun job calls this."""
    tc, oc = cfg.train, cfg.optim
    # ---------------------------------------------------------------- device, ranks, seeds, AMP
    device_type = ("cuda" if torch.cuda.is_available() else "cpu") if tc.device == "auto" else tc.device
    if device_type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but torch sees no CUDA device: use train.device=auto or cpu")
    ctx = init_distributed(device_type)
    try:
        device = torch.device(device_type, ctx.local_rank) if device_type == "cuda" else torch.device("cpu")
        seed_everything(tc.seed + ctx.rank, deterministic=tc.deterministic)
        autocast: Callable[[], AbstractContextManager[Any]] = (
            partial(torch.autocast, device.type, dtype=torch.bfloat16) if tc.amp else nullcontext
        )
        out_dir = Path(tc.out_dir)

        # ------------------------------------------------------------ data: endless, resumable streams
        datasets = build_datasets(cfg.data, cfg.class_names, cfg.seg_class_names)
        budget = cfg.data.cache_mb * 2**20  # decoded before the workers fork, so they share it
        for role in ("fusion_train", "semantic_train"):
            if role in datasets and budget > 0:
                budget -= preload(datasets[role], budget)
        stream = partial(
            BatchStream,
            batch_size=tc.batch_size,
            ctx=ctx,
            num_workers=tc.num_workers,
            pin_memory=device.type == "cuda",
        )
        # The fusion batch is also the discriminator's upper-level batch; its lower level gets its own.
        streams = {"fusion": stream(datasets["fusion_train"], seed=tc.seed)}
        task_names = set(cfg.bilevel.tasks) if cfg.bilevel.mode != "fusion_only" else set()
        use_disc = "discriminator" in task_names
        use_semantic = "semantic" in task_names and "semantic_train" in datasets
        labelled_tasks = [str(name) for name in ("detection", "segmentation") if name in task_names]
        if use_disc:
            streams["discriminator"] = stream(datasets["fusion_train"], seed=tc.seed + 1)
        if use_semantic:  # lower and upper level draw separate batches; semantic_val stays held out
            streams["semantic_lower"] = stream(datasets["semantic_train"], seed=tc.seed + 2)
            streams["semantic_upper"] = stream(datasets["semantic_train"], seed=tc.seed + 3)
        if labelled_tasks:  # the labelled split's training part only (its evaluation part: never)
            labelled = training_set(cfg.labelled.transform(cfg.data.train_transform()))
            for i, name in enumerate(labelled_tasks):
                streams[f"{name}_lower"] = stream(labelled, seed=tc.seed + 4 + 2 * i)
                streams[f"{name}_upper"] = stream(labelled, seed=tc.seed + 5 + 2 * i)

        # ------------------------------------------------------------ nets, optimisers, schedules, tasks
        fusion = build_fusion_net(cfg.fusion_net).to(device)
        if tc.init_from and ckpt is None:
            fusion.load_state_dict(load_checkpoint(data_path(tc.init_from))["models"]["fusion"])
        disc = Discriminator(cfg.discriminator).to(device) if use_disc else None
        semantic = SemanticNet(cfg.semantic_net).to(device) if use_semantic else None
        detector = load_detector(data_path(cfg.detection.weights)).to(device) if labelled_tasks else None
        finetune = "detection" in task_names and cfg.detection.finetune_head
        if detector is not None and finetune:
            for p in head_parameters(detector):  # the rest stays frozen (BN is folded: no statistics)
                p.requires_grad_(True)
        seg_head = SegHead(cfg.segmentation.head).to(device) if "segmentation" in task_names else None
        nets: dict[str, nn.Module | None] = {
            "fusion": fusion,
            "discriminator": disc,
            "semantic": semantic,
            "detector": detector if finetune else None,  # a frozen detector is the pretrained file
            "seg_head": seg_head,
        }
        broadcast_parameters(nets.values(), ctx)
        lrs = {
            "fusion": oc.fusion_lr,
            "discriminator": oc.discriminator_lr,
            "semantic": oc.semantic_lr,
            "detector": cfg.detection.lr,
            "seg_head": cfg.segmentation.lr,
        }
        optimizers = {
            # fused: one kernel per step for all parameters (CUDA and CPU in torch >= 2.4)
            name: torch.optim.AdamW(
                [p for p in net.parameters() if p.requires_grad],
                lr=lrs[name],
                betas=oc.betas,
                weight_decay=oc.weight_decay,
                fused=True,
            )
            for name, net in nets.items()
            if net is not None
        }
        schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, oc=oc, max_steps=tc.max_steps))
            for name, opt in optimizers.items()
        }
        tasks: list[LowerTask] = []
        if disc is not None:
            tasks.append(DiscriminatorTask(disc, optimizers["discriminator"], cfg.gan_loss))
        if semantic is not None:
            tasks.append(SemanticTask(semantic, optimizers["semantic"], cfg.semantic_loss))
        if detector is not None:
            on_fused = fused_detector(detector, cfg.labelled.crop_size)
            if "detection" in task_names:
                tasks.append(DetectionTask(on_fused, optimizers.get("detector"), cfg.detection))
            if seg_head is not None:
                tasks.append(SegmentationTask(seg_head, on_fused, optimizers["seg_head"], cfg.segmentation))
        # Same seed on every rank: the "random" rule must draw the same weights everywhere.
        agg_generator = torch.Generator().manual_seed(tc.seed)
        aggregator = make_aggregator(cfg.bilevel, agg_generator)
        all_reduce = gradient_sync(ctx)  # explicit gradient mean under DDP (see distributed.py)
        trained = {"detection": False, "segmentation": False}

        # ------------------------------------------------------------ resume
        step, metrics = 0, {}
        if ckpt is not None:
            for name, net in nets.items():
                state = ckpt["models"].get(name)
                if (net is None) != (state is None):
                    raise CheckpointError(
                        f"the checkpoint {'lacks' if state is None else 'has'} a {name} net "
                        "but this config does not match: resume with the checkpoint's config"
                    )
                if net is not None:
                    net.load_state_dict(state)
            for name, opt in optimizers.items():
                opt.load_state_dict(ckpt["optimizers"][name])
                schedulers[name].load_state_dict(ckpt["schedulers"][name])
            aggregator.load_state_dict(ckpt["aggregator"])
            agg_generator.set_state(ckpt["rng"]["aggregator"])
            for name, s in streams.items():
                s.load_state_dict(ckpt["data"][name])
            rank_rng = ckpt["rng"]["ranks"]
            restore_rng(rank_rng[ctx.rank] if ctx.rank < len(rank_rng) else rank_rng[0])
            step, trained, metrics = int(ckpt["step"]), dict(ckpt["trained"]), dict(ckpt["metrics"])

        def checkpoint() -> None:
            ranks_rng: list[Any] = [capture_rng()]
            if ctx.enabled:  # every rank's RNG, so each continues its own stream on resume
                ranks_rng = [None] * ctx.world_size
                dist.all_gather_object(ranks_rng, capture_rng())
            if not ctx.is_main:
                return
            save_checkpoint(
                out_dir / CKPT_NAME,
                {
                    "config": to_dict(cfg),
                    "step": step,
                    "models": {name: None if net is None else net.state_dict() for name, net in nets.items()},
                    "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
                    "schedulers": {name: sch.state_dict() for name, sch in schedulers.items()},
                    "rng": {"ranks": ranks_rng, "aggregator": agg_generator.get_state()},
                    "aggregator": aggregator.state_dict(),
                    "data": {name: s.state_dict() for name, s in streams.items()},
                    "trained": trained,
                    "class_names": list(cfg.class_names),
                    "seg_class_names": list(cfg.seg_class_names),
                    "metrics": metrics,
                },
            )

        # ------------------------------------------------------------ logging
        writer = None
        if ctx.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out_dir / "config.yaml")
            writer = SummaryWriter(str(out_dir))
        result = TrainResult(models=nets)
        window: list[dict[str, float]] = []  # this log interval's steps, read back to the host
        pending: list[Logs] = []  # steps whose logs are still on the device
        bar = tqdm(
            total=tc.max_steps, initial=step, disable=not ctx.is_main, desc="train", dynamic_ncols=True
        )
        t0 = time.perf_counter()

        # ------------------------------------------------------------ the loop
        while step < tc.max_steps:
            fusion_batch = to_device(next(streams["fusion"]), device)
            task_batches: dict[str, tuple[Batch, Batch]] = {}
            if disc is not None:
                task_batches["discriminator"] = (
                    to_device(next(streams["discriminator"]), device),
                    fusion_batch,
                )
            if semantic is not None:
                lower = to_device(next(streams["semantic_lower"]), device)
                task_batches["semantic"] = (lower, to_device(next(streams["semantic_upper"]), device))
                # Heads count as trained only once they have seen labels of their kind.
                trained["detection"] |= any(len(b) > 0 for b in lower["boxes"])
                trained["segmentation"] |= lower["mask"] is not None
            for name in labelled_tasks:
                lower = to_device(next(streams[f"{name}_lower"]), device)
                task_batches[name] = (lower, to_device(next(streams[f"{name}_upper"]), device))
            trained["segmentation"] |= seg_head is not None

            logs = bilevel_step(
                fusion,
                optimizers["fusion"],
                cfg.fusion_loss,
                tasks,
                fusion_batch,
                task_batches,
                cfg.bilevel,
                aggregator,
                all_reduce=all_reduce,
                autocast=autocast,
                clip_grad_norm=oc.clip_grad_norm,
            )
            for sch in schedulers.values():
                sch.step()
            step += 1
            logs.update({f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in optimizers.items()})
            pending.append(logs)
            bar.update(1)

            log_now = step % tc.log_interval == 0 or step == tc.max_steps
            if log_now or step % tc.ckpt_interval == 0:  # the only host syncs of the loop
                steps, pending = read_back(pending, step), []
                window += steps
                result.history += steps
            if log_now:
                rate = len(window) / (time.perf_counter() - t0)
                result.it_per_s.append(rate)
                if writer is not None:  # means over the interval: smoother curves, smaller event files
                    means = {k: float(np.mean([w[k] for w in window if k in w])) for k in window[-1]}
                    means["perf/it_per_s"] = rate
                    means["perf/samples_per_s"] = rate * tc.batch_size * ctx.world_size
                    for key, value in means.items():
                        writer.add_scalar(key, value, step)
                    bar.set_postfix(loss=f"{means['fusion/total']:.4f}", refresh=False)
                    tqdm.write(
                        f"step {step}: fusion {means['fusion/total']:.4f}, |g| {means['grad_norm']:.3g}, "
                        f"lr {means['lr/fusion']:.2e}, {rate:.2f} it/s, "
                        f"{means['perf/samples_per_s']:.1f} samples/s"
                    )
                window, t0 = [], time.perf_counter()
            if writer is not None and (step % tc.eval_interval == 0 or step == tc.max_steps):
                metrics = validate(
                    fusion, datasets["fusion_val"], tc.eval_images, tc.eval_metrics, device, writer, step
                )
                tqdm.write(f"step {step} eval: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
            if step % tc.ckpt_interval == 0 or step == tc.max_steps:
                checkpoint()
        bar.close()
        if writer is not None:
            writer.close()
        return result
    finally:
        cleanup(ctx)


def seed_everything(seed: int, *, deterministic: bool) -> None:
    """Seed python, numpy and torch; optionally force deterministic kernels (slower on GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:  # cuBLAS needs a fixed workspace for reproducible matmuls (read at CUDA init)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call imports torch._dynamo (~2 s)
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def lr_factor(step: int, *, oc: OptimConfig, max_steps: int) -> float:
    """Learning-rate multiplier: linear warmup, then cosine down to min_lr_ratio (or step decay)."""
    if step < oc.warmup_steps:
        return (step + 1) / oc.warmup_steps
    if oc.schedule == "step":
        return float(oc.step_gamma ** ((step - oc.warmup_steps) // oc.step_size))
    progress = min(1.0, (step - oc.warmup_steps) / max(1, max_steps - oc.warmup_steps))
    return oc.min_lr_ratio + (1.0 - oc.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def read_back(pending: list[Logs], step: int) -> list[dict[str, float]]:
    """The logs of the steps up to `step` as floats; raises if θ's gradient was not finite."""
    steps = logs_to_host(pending)
    for i, logs in enumerate(steps):
        if not math.isfinite(logs["grad_norm"]):
            raise LossError(
                f"non-finite gradient for the fusion net at step {step - len(steps) + i + 1}: "
                "lower the learning rates or set train.amp=false"
            )
    return steps


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move a collated batch's tensors (and per-image box/label lists) to `device`."""
    move = partial(torch.Tensor.to, device=device, non_blocking=True)
    return {
        **batch,
        "ir": move(batch["ir"]),
        "visible": move(batch["visible"]),
        "boxes": [move(b) for b in batch["boxes"]],
        "labels": [move(lab) for lab in batch["labels"]],
        "mask": None if batch["mask"] is None else move(batch["mask"]),
    }


@torch.no_grad()
def validate(
    fusion: nn.Module,
    dataset: Dataset[dict[str, Any]],
    count: int,
    metric_names: list[str],
    device: torch.device,
    writer: SummaryWriter,
    step: int,
) -> dict[str, float]:
    """Fuse the first `count` val pairs: mean fusion metrics and an IR | VIS | fused image per pair."""
    fusion.eval()
    seeded = SeededDataset(dataset)
    per_image: list[dict[str, float]] = []
    for i in range(min(count, len(seeded))):
        sample = seeded[(0, i)]  # fixed token: the same view of the pair at every evaluation
        ir, vis = sample["ir"][None].to(device), sample["visible"][None].to(device)
        ycrcb = bgr_to_ycrcb(vis)
        fused_y = fusion(ir, ycrcb[:, :1]).float()
        fused_bgr = ycrcb_to_bgr(torch.cat([fused_y, ycrcb[:, 1:]], dim=1)).clamp(0, 1)
        per_image.append(fusion_metrics(_to_u8(fused_y), _to_u8(ir), _to_u8(ycrcb[:, :1]), metric_names))
        grid = torch.cat([ir.expand(-1, 3, -1, -1), vis, fused_bgr], dim=3)[0].flip(0)  # BGR -> RGB
        writer.add_image(f"eval/{sample['name']}", grid.cpu(), step)
    fusion.train()
    means = (
        {f"eval/{k}": float(np.mean([m[k] for m in per_image])) for k in metric_names} if per_image else {}
    )
    for key, value in means.items():
        writer.add_scalar(key, value, step)
    return means


def _to_u8(image: torch.Tensor) -> np.ndarray:
    """[1,1,H,W] float 0..1 -> uint8 H×W, as the metrics expect."""
    return (image[0, 0].clamp(0, 1) * 255).round().byte().cpu().numpy()


def print_summary(cfg: ExperimentConfig) -> None:
    """Params and GMAC per 480×640 frame of each net this config trains (`--summary`)."""
    tasks = set(cfg.bilevel.tasks) if cfg.bilevel.mode != "fusion_only" else set()
    rows = complexity.summarize(
        cfg.fusion_net,
        cfg.discriminator if "discriminator" in tasks else None,
        cfg.semantic_net if "semantic" in tasks and cfg.data.semantic_train else None,
    )
    print(f"{'net':<20} {'params':>12} {'GMAC@480x640':>14}")
    for row in rows:
        print(f"{row['name']:<20} {row['params']:>12,} {row['gmac']:>14.3f}")


if __name__ == "__main__":
    sys.exit(main())
