"""Training throughput of a recipe: it/s and samples/s with and without the in-memory image cache.

Each variant is a real `fusion-train` run (training/train.py) of `--warmup` + `--steps` steps; the
rate is that of the timed steps alone (the loop reads its logs back from the device at the end of
each interval, so the clock stops after the device is done). Speed claims are ratios between rows
of one run, never absolute numbers across machines.

usage: python benchmarks/bench_train.py [--config C] [--device cpu|cuda] [--steps N] [--warmup N]
                                        [--amp both|on|off] [section.key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from training.config import ConfigError, load_config
from training.data import DataConfig, DataError
from training.train import train

ROOT = Path(__file__).resolve().parents[1]
AMP_CHOICES = {"on": [True], "off": [False], "both": [False, True]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "training" / "configs" / "realtime.yaml")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=9, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (workers, caches)")
    parser.add_argument("--amp", choices=tuple(AMP_CHOICES), default="off", help="bf16 autocast rows")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.batch_size=8")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, *, cache_mb: int, amp: bool) -> float:
    """it/s of the timed steps of one run (log intervals of `warmup` steps; the first is not timed)."""
    with tempfile.TemporaryDirectory() as out:
        steps = args.warmup + args.steps
        cfg = load_config(
            args.config,
            [
                *args.overrides,
                f"train.device={args.device}",
                f"train.amp={str(amp).lower()}",
                f"data.cache_mb={cache_mb}",
                f"train.max_steps={steps}",
                f"train.log_interval={args.warmup}",
                f"train.eval_interval={steps}",
                f"train.ckpt_interval={steps}",
                "train.eval_images=0",
                "optim.warmup_steps=0",
                f"train.out_dir={out}",
            ],
        )
        # Equal intervals: the rate over all of them is the harmonic mean of theirs.
        return statistics.harmonic_mean(train(cfg).it_per_s[1:])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.steps % args.warmup:
        print("ERROR: --steps must be a multiple of --warmup (one log interval each)", file=sys.stderr)
        return 1
    base = load_config(args.config, args.overrides)
    batch = base.train.batch_size
    rows = []
    try:
        for amp in AMP_CHOICES[args.amp]:
            for cache_mb in (0, base.data.cache_mb or DataConfig().cache_mb):
                rate = measure(args, cache_mb=cache_mb, amp=amp)
                rows.append((f"{cache_mb} MB", "bf16" if amp else "fp32", rate, rate * batch))
    except (ConfigError, DataError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(f"\n{args.config.name} on {args.device}, batch {batch}, {args.steps} timed steps")
    print(f"{'cache':>8} {'amp':>5} {'it/s':>8} {'samples/s':>10}")
    for cache, amp_name, rate, samples in rows:
        print(f"{cache:>8} {amp_name:>5} {rate:>8.2f} {samples:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
