"""The pipeline benchmark of `fusion-node bench` (fusion_node/bench.py), side by side with BDLFusion.

Here, in a source checkout, on the shared MSRS samples by default, and, when torch and the anchor
folder exist, in the same run (same frames, machine and thread count): the official BDLFusion fusion
network (Fusion_Network_IJ) in torch eager and in ONNX Runtime, its FCOS detector body in torch eager,
and the speed ratios. Speed claims are
such ratios, never absolute numbers across runs. The graph's own split: the whole model against its
fusion part alone (the subgraph up to the `fused` output, cut out with onnx.utils.extract_model), both
in ONNX Runtime on the same frames, gives the detector's share of the inference time.

usage: python benchmarks/bench_pipeline.py [--model M] [--frames DIR] [--iterations N] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fusion_node import bench
from fusion_node.bench import FramePair, summary, time_calls
from fusion_node.pipeline import PipelineError
from fusion_node.pipeline.model import default_model_path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"


def default_frames() -> Path:
    """The MSRS samples of the shared data, else the package's bundled sample."""
    msrs = SHARED / "data" / "msrs_samples"
    return msrs if msrs.is_dir() else bench.SAMPLE


def bench_anchor(anchor: Path, frames: list[FramePair], *, threads: int, iterations: int) -> dict:
    """The official BDLFusion networks: the fusion network in torch eager, then in ONNX Runtime after
    export, and the FCOS detector body (ResNet-50 + FPN + heads, without its Python-loop NMS) in
    torch eager, configured by the anchor's own bench.py.

    Inputs as the official test.py feeds them: IR and the visible YCrCb image in [0, 1].
    """
    import onnxruntime as ort
    import torch

    sys.path.insert(0, str(anchor))  # the anchor is a folder of modules, not an installed package
    try:
        network = importlib.import_module("model.fcos_fusion").Fusion_Network_IJ().eval()
        spec = importlib.util.spec_from_file_location("bdlfusion_bench", anchor / "bench.py")
        if spec is None or spec.loader is None:
            raise bench.BenchError(f"{anchor / 'bench.py'} is missing: the anchor folder is incomplete")
        anchor_bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(anchor_bench)
        detector_body = anchor_bench.Network_IJCAI(None, mode="inference", config=anchor_bench.Cfg).eval()
        detector_body = detector_body.denoise_net.fcos_body
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
        body_ms, _ = time_calls(lambda i: detector_body(inputs[i % len(inputs)][1]), iterations, warmup=1)
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
    return {
        "torch_eager": summary(eager),
        "onnxruntime": summary(onnx_ms),
        "fcos_body_torch": summary(body_ms),
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


def split_table(split: dict[str, Any]) -> list[str]:
    """The graph-split lines under fusion_node.bench's table."""
    lines = [f"The graph alone in ONNX Runtime, same frames and threads ({'min ms':>8} too):"]
    for name in ("whole graph", "fusion part"):
        s = split[name]
        lines.append(f"{'  ' + name:<28}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['min_ms']:>10.2f}")
    lines.append(f"detector's share of the graph (p50): {100 * split['detector_share']:.0f} %")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_pipeline", description=__doc__.split("\n")[0])
    bench.add_arguments(parser, frames=default_frames())
    parser.add_argument(
        "--anchor", type=Path, default=SHARED / "anchors" / "bdlfusion", help="BDLFusion folder"
    )
    parser.add_argument("--anchor-iterations", type=int, default=3, help="timed iterations of the anchor")
    parser.add_argument("--no-anchor", action="store_true", help="skip the BDLFusion side-by-side timing")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark as one JSON-ready dict: fusion_node.bench's, plus "graph_split" and "anchor"."""
    out = bench.run(args)
    frames = bench.load_frames(args.frames)
    out["graph_split"] = bench_graph_split(
        args.model, frames, threads=args.threads, iterations=args.iterations
    )
    if args.no_anchor:
        out["anchor"] = "skipped (--no-anchor)"
    elif importlib.util.find_spec("torch") is None or not args.anchor.is_dir():
        out["anchor"] = f"skipped (needs torch and {args.anchor})"
    else:
        anchor = bench_anchor(args.anchor, frames, threads=args.threads, iterations=args.anchor_iterations)
        ours_ms = out["ours"]["stages"]["total"]["p50_ms"]
        anchor["speedup_vs_torch"] = anchor["torch_eager"]["p50_ms"] / ours_ms
        anchor["speedup_vs_onnxruntime"] = anchor["onnxruntime"]["p50_ms"] / ours_ms
        split = out["graph_split"]
        ours_detector_ms = split["whole graph"]["p50_ms"] - split["fusion part"]["p50_ms"]
        anchor["detector_speedup"] = anchor["fcos_body_torch"]["p50_ms"] / max(ours_detector_ms, 1e-3)
        out["anchor"] = anchor
    return out


def anchor_table(anchor: dict[str, Any] | str) -> list[str]:
    """The BDLFusion lines under fusion_node.bench's table."""
    if isinstance(anchor, str):
        return [f"BDLFusion: {anchor}"]
    lines = ["BDLFusion Fusion_Network_IJ (fusion only), same frames and threads:"]
    for name in ("torch_eager", "onnxruntime"):
        s = anchor[name]
        lines.append(f"{'  ' + name:<28}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}")
    lines.append(
        f"speed ratio (BDLFusion fusion p50 / our whole pipeline p50): {anchor['speedup_vs_torch']:.1f}x vs "
        f"torch eager, {anchor['speedup_vs_onnxruntime']:.1f}x vs ONNX Runtime"
    )
    s = anchor["fcos_body_torch"]
    lines.append("BDLFusion FCOS detector body (ResNet-50 + FPN + heads, no NMS), same frames and threads:")
    lines.append(f"{'  torch_eager':<28}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}")
    lines.append(
        "detector ratio (BDLFusion FCOS body p50 / our graph's detector share, whole graph - fusion part"
        f" p50): {anchor['detector_speedup']:.1f}x"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print a table (or JSON); errors print `ERROR: ...` and return 1."""
    args = parse_args(argv)
    try:
        out = run(args)
    except (bench.BenchError, PipelineError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(
        bench.render(
            out,
            bench.table(out) + split_table(out["graph_split"]) + anchor_table(out["anchor"]),
            as_json=args.json,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
