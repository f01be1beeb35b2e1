"""Fusion-net candidates alone in ONNX Runtime CPU: params, GMAC and latency at 640×480, random weights.

Latency does not depend on the weights, so architectures are compared before any training: each
config (arch plus `section.key=value`-style fusion_net overrides) is exported as the bare fusion net
(IR, visible Y in 0..1 -> fused Y) and timed on the same random frame, same threads. The whole
graph (fusion -> detector -> seg head) is benchmarks/bench_pipeline.py's job, on an exported model.

usage: python benchmarks/bench_fusion_arch.py [--candidate 'NAME=k=v;k=v' ...] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
import yaml

from fusion_node.bench import summary, time_calls
from training.config import ConfigError, build_section
from training.export import INPUT_SIZE
from training.models.complexity import count_macs, count_params
from training.models.errors import ModelConfigError
from training.models.fusion import FusionNetConfig, build_fusion_net

DEFAULT_CANDIDATES = ("realtime=arch=realtime", "fast=arch=fast")


def parse_candidate(text: str) -> tuple[str, FusionNetConfig]:
    """'NAME=key=value;key=value' -> (NAME, FusionNetConfig); values are YAML ("[8, 16, 24]" too)."""
    name, _, spec = text.partition("=")
    fields: dict[str, Any] = {}
    for item in filter(None, spec.split(";")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(
                f"candidate {text!r}: {item!r} is not key=value; e.g. fast=arch=fast;fast_width=16"
            )
        fields[key.strip()] = yaml.safe_load(value)
    return name, build_section(FusionNetConfig, fields, "fusion_net")


def time_candidate(cfg: FusionNetConfig, *, threads: int, iterations: int) -> dict[str, Any]:
    """Params, GMAC and ORT CPU p50/p95 of one fusion net at the contract's default input size."""
    torch.manual_seed(0)
    net = build_fusion_net(cfg).eval()
    h, w = INPUT_SIZE
    ir, vis = torch.rand(1, 1, h, w), torch.rand(1, 1, h, w)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        path = Path(tmp) / "fusion.onnx"
        torch.onnx.export(
            net, (ir, vis), str(path), input_names=["ir", "vis"], output_names=["fused"],
            opset_version=17, dynamo=False,
        )  # fmt: skip
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"ir": ir.numpy(), "vis": vis.numpy()}
        ms, _ = time_calls(lambda _i: session.run(None, feed), iterations, warmup=3)
    return {"params": count_params(net), "gmac": count_macs(net, ir, vis) / 1e9, **summary(ms)}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_fusion_arch", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--candidate", action="append", default=None, metavar="NAME=k=v;k=v",
        help=f"a fusion_net config to time (repeatable; default: {' '.join(DEFAULT_CANDIDATES)})",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--iterations", type=int, default=30, help="timed runs per candidate")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Time every candidate and print a table (or JSON); a bad candidate prints `ERROR: ...`, returns 1."""
    args = parse_args(argv)
    try:
        candidates = [parse_candidate(c) for c in args.candidate or DEFAULT_CANDIDATES]
    except (ConfigError, ModelConfigError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    rows = {
        name: time_candidate(cfg, threads=args.threads, iterations=args.iterations)
        for name, cfg in candidates
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    h, w = INPUT_SIZE
    print(f"fusion net alone, ONNX Runtime CPU, {args.threads} threads, {w}x{h}, {args.iterations} runs")
    print(f"{'candidate':<24}{'params':>10}{'GMAC':>8}{'p50 ms':>10}{'p95 ms':>10}")
    for name, r in rows.items():
        print(f"{name:<24}{r['params']:>10,}{r['gmac']:>8.3f}{r['p50_ms']:>10.2f}{r['p95_ms']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
