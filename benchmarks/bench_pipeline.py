"""CPU benchmark of FusionPipeline at 640×480: per-stage latency (p50/p95) and FPS on real frames.

The graph's own split: the whole model against its fusion part alone (the subgraph up to the
`fused` output, cut out with onnx.utils.extract_model), both in ONNX Runtime on the same frames,
gives the detector's share of the inference time.

Side by side in the same run (same frames, machine and thread count), when torch and the anchor
folder exist: the official BDLFusion fusion network (Fusion_Network_IJ) in torch eager and in ONNX
Runtime, and the speed ratio. Speed claims are such ratios, never absolute numbers across runs.
CPU only: every clock read follows a synchronous call, so no device synchronize is needed.

usage: python benchmarks/bench_pipeline.py [--model M] [--frames DIR] [--iterations N] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fusion_node.pipeline import FusionPipeline, PipelineConfig, PipelineError
from fusion_node.pipeline.model import default_model_path
from fusion_node.pipeline.pair_files import find_pairs, read_pair

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
WIDTH, HEIGHT = 640, 480
STAGES = ("preprocess", "inference", "postprocess", "total")

FramePair = tuple[np.ndarray, np.ndarray]


class BenchError(Exception):
    """A benchmark that cannot run; the message names the missing piece and the fix."""


def default_frames() -> Path:
    """The MSRS samples of the shared data, else the bundled sample."""
    msrs = SHARED / "data" / "msrs_samples"
    return msrs if msrs.is_dir() else ROOT / "fusion_node" / "sample"


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


def bench_graph_split(model: Path | None, frames: list[FramePair], *, threads: int, iterations: int) -> dict:
    """p50/p95 of the whole graph and of its fusion part (inputs -> `fused`) in ONNX Runtime, and the
    share of the rest (the detector, and the segmentation branch when the model has one)."""
    import onnx.utils
    import onnxruntime as ort

    path = model or default_model_path()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    feeds = [
        {"ir": ir[None, None], "visible": np.ascontiguousarray(vi.transpose(2, 0, 1)[None])}
        for ir, vi in frames
    ]
    with tempfile.TemporaryDirectory() as tmp:
        fusion_path = Path(tmp) / "fusion_only.onnx"
        onnx.utils.extract_model(str(path), str(fusion_path), ["ir", "visible"], ["fused"])
        timings = {}
        for name, graph in (("whole graph", path), ("fusion part", fusion_path)):
            session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
            run = session.run  # bound now: the lambda below runs in this iteration only
            ms, _ = time_calls(lambda i, run=run: run(None, feeds[i % len(feeds)]), iterations, warmup=3)
            timings[name] = summary(ms)
    whole, fusion = timings["whole graph"]["p50_ms"], timings["fusion part"]["p50_ms"]
    return {**timings, "detector_share": (whole - fusion) / whole}


def bench_anchor(anchor: Path, frames: list[FramePair], *, threads: int, iterations: int) -> dict:
    """The official BDLFusion fusion network: torch eager, then ONNX Runtime after export.

    Inputs as the official test.py feeds them: IR and the visible YCrCb image in [0, 1].
    """
    import onnxruntime as ort
    import torch

    sys.path.insert(0, str(anchor))  # the anchor is a folder of modules, not an installed package
    try:
        network = importlib.import_module("model.fcos_fusion").Fusion_Network_IJ().eval()
    finally:
        sys.path.remove(str(anchor))
    torch.set_num_threads(threads)
    inputs = [
        (
            torch.from_numpy(ir[None, None].astype(np.float32) / 255.0),
            torch.from_numpy(
                cv2.cvtColor(vi, cv2.COLOR_BGR2YCrCb).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
            ),
        )
        for ir, vi in frames
    ]
    with torch.no_grad():
        eager, _ = time_calls(lambda i: network(*inputs[i % len(inputs)]), iterations, warmup=1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bdlfusion_fusion.onnx"
            torch.onnx.export(
                network, inputs[0], str(path), input_names=["ir", "vis"], output_names=["fused"],
                opset_version=17, dynamo=False,
            )  # fmt: skip
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feeds = [{"ir": ir.numpy(), "vis": vis.numpy()} for ir, vis in inputs]
            onnx_ms, _ = time_calls(lambda i: session.run(None, feeds[i % len(feeds)]), iterations, warmup=1)
    return {"torch_eager": summary(eager), "onnxruntime": summary(onnx_ms)}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_pipeline", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model (default: models/fusion_rt.onnx)"
    )
    parser.add_argument("--frames", type=Path, default=None, help="pairs folder (default: MSRS samples)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads, ours and the anchor's")
    parser.add_argument("--iterations", type=int, default=30, help="timed iterations of our pipeline")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument(
        "--anchor", type=Path, default=SHARED / "anchors" / "bdlfusion", help="BDLFusion folder"
    )
    parser.add_argument("--anchor-iterations", type=int, default=3, help="timed iterations of the anchor")
    parser.add_argument("--no-anchor", action="store_true", help="skip the BDLFusion side-by-side timing")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark as one JSON-ready dict."""
    if args.iterations < 1 or args.warmup < 0:
        raise BenchError("--iterations must be >= 1 and --warmup >= 0")
    frames = load_frames(args.frames or default_frames())
    out: dict[str, Any] = {
        "frame": f"{WIDTH}x{HEIGHT}",
        "frames": len(frames),
        "threads": args.threads,
        "iterations": args.iterations,
        "ours": bench_pipeline(
            args.model, frames, threads=args.threads, iterations=args.iterations, warmup=args.warmup
        ),
        "graph_split": bench_graph_split(
            args.model, frames, threads=args.threads, iterations=args.iterations
        ),
    }
    if args.no_anchor:
        out["anchor"] = "skipped (--no-anchor)"
    elif importlib.util.find_spec("torch") is None or not args.anchor.is_dir():
        out["anchor"] = f"skipped (needs torch and {args.anchor})"
    else:
        anchor = bench_anchor(args.anchor, frames, threads=args.threads, iterations=args.anchor_iterations)
        ours_ms = out["ours"]["stages"]["total"]["p50_ms"]
        anchor["speedup_vs_torch"] = anchor["torch_eager"]["p50_ms"] / ours_ms
        anchor["speedup_vs_onnxruntime"] = anchor["onnxruntime"]["p50_ms"] / ours_ms
        out["anchor"] = anchor
    return out


def table(out: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    ours = out["ours"]
    lines = [
        f"FusionPipeline ({ours['model']}), ONNX Runtime CPU, {out['threads']} threads, {out['frame']}, "
        f"{out['iterations']} iterations over {out['frames']} frames",
        f"{'stage':<28}{'p50 ms':>10}{'p95 ms':>10}",
    ]
    lines += [f"{stage:<28}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}" for stage, s in ours["stages"].items()]
    lines.append(f"{'FPS (whole pipeline)':<28}{ours['fps']:>10.1f}")
    split = out["graph_split"]
    lines.append(f"The graph alone in ONNX Runtime, same frames and threads ({'min ms':>8} too):")
    for name in ("whole graph", "fusion part"):
        s = split[name]
        lines.append(f"{'  ' + name:<28}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['min_ms']:>10.2f}")
    lines.append(f"detector's share of the graph (p50): {100 * split['detector_share']:.0f} %")
    anchor = out["anchor"]
    if isinstance(anchor, str):
        lines.append(f"BDLFusion: {anchor}")
        return "\n".join(lines)
    lines.append("BDLFusion Fusion_Network_IJ (fusion only), same frames and threads:")
    for name in ("torch_eager", "onnxruntime"):
        s = anchor[name]
        lines.append(f"{'  ' + name:<28}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}")
    lines.append(
        f"speed ratio (BDLFusion fusion p50 / our whole pipeline p50): {anchor['speedup_vs_torch']:.1f}x vs "
        f"torch eager, {anchor['speedup_vs_onnxruntime']:.1f}x vs ONNX Runtime"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print a table (or JSON); errors print `ERROR: ...` and return 1."""
    args = parse_args(argv)
    try:
        out = run(args)
    except (BenchError, PipelineError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2) if args.json else table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
