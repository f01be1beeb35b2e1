"""CPU benchmark of FusionPipeline at 640×480: per-stage latency (p50/p95) and FPS on real frames.

`fusion-node bench` runs it from an installed package (a robot included), on the bundled sample
pairs unless --frames names others. benchmarks/bench_pipeline.py builds on it in a source checkout
(the shared MSRS frames, the BDLFusion network side by side). CPU only: every clock read follows a
synchronous call, so no device synchronize is needed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fusion_node.pipeline import FusionPipeline, PipelineConfig
from fusion_node.pipeline.pair_files import find_pairs, read_pair

WIDTH, HEIGHT = 640, 480
STAGES = ("preprocess", "inference", "postprocess", "total")
SAMPLE = Path(__file__).resolve().parent / "sample"  # package data: present wherever the package is

FramePair = tuple[np.ndarray, np.ndarray]


class BenchError(Exception):
    """A benchmark that cannot run; the message names the missing piece and the fix."""


def load_frames(folder: Path) -> list[FramePair]:
    """(IR H×W, visible H×W×3 BGR) uint8 pairs resized to 640×480."""
    frames = []
    for pair in find_pairs(folder):
        ir, vi = read_pair(pair)
        frames.append((cv2.resize(ir, (WIDTH, HEIGHT)), cv2.resize(vi, (WIDTH, HEIGHT))))
    return frames


def summary(values_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/min of a list of milliseconds (on a shared machine the fastest call is the least
    disturbed one)."""
    values = np.asarray(values_ms, np.float64)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "min_ms": float(values.min()),
    }


def time_calls(fn: Callable[[int], object], iterations: int, warmup: int) -> tuple[list[float], float]:
    """Wall milliseconds of `fn(i)` after `warmup` untimed calls, and the timed loop's seconds."""
    for i in range(warmup):
        fn(i)
    times = []
    start = time.perf_counter()
    for i in range(iterations):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e3)
    return times, time.perf_counter() - start


def bench_pipeline(
    model: Path | None, frames: list[FramePair], *, threads: int, iterations: int, warmup: int
) -> dict:
    """Per-stage p50/p95 from the pipeline's own timings, and FPS of the timed loop.

    `model` None is the default model; ModelError lists where it was looked for when it is absent.
    """
    pipeline = FusionPipeline(PipelineConfig(model_path=model, backend="onnxruntime", threads=threads))
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def step(i: int) -> None:
        ir, vi = frames[i % len(frames)]
        for stage, ms in pipeline.process(ir, vi).timings_ms.items():
            if stage in stages:
                stages[stage].append(ms)

    _, wall_s = time_calls(step, iterations, warmup)
    return {
        "model": pipeline.info.model_name,
        "stages": {stage: summary(ms[warmup:]) for stage, ms in stages.items()},
        "fps": iterations / wall_s,
    }


def add_arguments(parser: argparse.ArgumentParser, *, frames: Path = SAMPLE) -> None:
    """The benchmark's options, on `fusion-node bench` or on a script that extends it."""
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the package's model)")
    parser.add_argument("--frames", type=Path, default=frames, help=f"pairs folder (default: {frames})")
    parser.add_argument("--threads", type=int, default=2, help="intra-op inference threads")
    parser.add_argument("--iterations", type=int, default=30, help="timed iterations of the pipeline")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline benchmark as one JSON-ready dict.

    Raises:
        BenchError: iteration counts out of range.
        PipelineError: no frames or no model (the message says where they were looked for).
    """
    if args.iterations < 1 or args.warmup < 0:
        raise BenchError("--iterations must be >= 1 and --warmup >= 0")
    frames = load_frames(args.frames)
    return {
        "frame": f"{WIDTH}x{HEIGHT}",
        "frames": len(frames),
        "threads": args.threads,
        "iterations": args.iterations,
        "ours": bench_pipeline(
            args.model, frames, threads=args.threads, iterations=args.iterations, warmup=args.warmup
        ),
    }


def table(out: dict[str, Any]) -> list[str]:
    """The pipeline results as plain-text table lines."""
    ours = out["ours"]
    lines = [
        f"FusionPipeline ({ours['model']}), ONNX Runtime CPU, {out['threads']} threads, {out['frame']}, "
        f"{out['iterations']} iterations over {out['frames']} frames",
        f"{'stage':<28}{'p50 ms':>10}{'p95 ms':>10}",
    ]
    lines += [f"{stage:<28}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}" for stage, s in ours["stages"].items()]
    lines.append(f"{'FPS (whole pipeline)':<28}{ours['fps']:>10.1f}")
    return lines


def render(out: dict[str, Any], lines: list[str], *, as_json: bool) -> str:
    """What the benchmark prints: `out` as JSON, or the table `lines`."""
    return json.dumps(out, indent=2) if as_json else "\n".join(lines)
