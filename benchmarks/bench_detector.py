"""CPU speed of the pretrained CenterNet detector alone, per input size, PyTorch eager vs ONNX Runtime.

The detector (road classes decoded) on a real visible frame letterboxed to each size; both
runtimes with the same intra-op thread count, in the same run. Warm-up calls first; every call
is synchronous on CPU, so no device synchronize is needed.

usage: python benchmarks/bench_detector.py [--sizes 512 416 320] [--threads 2] [--iterations N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import torch
from bench_pipeline import SHARED, summary, time_calls

from training.models.centernet import (
    ROAD_CLASSES,
    CenterNet,
    export_centernet_onnx,
    letterbox,
    load_centernet,
)
from training.models.tfjs import PretrainedModelError
from training.paths import CENTERNET

FRAME = SHARED / "data" / "m3fd" / "vi" / "00000.png"
RUNTIMES = ("torch", "torch_channels_last", "onnxruntime")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_detector", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=CENTERNET, help="centernet.json (with its .bin)")
    parser.add_argument("--frame", type=Path, default=FRAME, help="a visible image")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 416, 320], help="square input sides")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of both runtimes")
    parser.add_argument("--iterations", type=int, default=10, help="timed calls per size and runtime")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser.parse_args(argv)


def bench_size(
    model: CenterNet, image: np.ndarray, size: int, folder: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """p50/p95 ms of PyTorch eager and ONNX Runtime on the image letterboxed to size×size."""
    pixels = letterbox(np.ascontiguousarray(image[..., ::-1]), size)[0]
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float().contiguous()
    with torch.no_grad():
        torch_ms, _ = time_calls(lambda _: model(x), args.iterations, args.warmup)
        # channels_last: oneDNN's depthwise convs are ~3× faster in NHWC on CPU.
        model_cl, x_cl = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
        torch_cl_ms, _ = time_calls(lambda _: model_cl(x_cl), args.iterations, args.warmup)
        model.to(memory_format=torch.contiguous_format)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    onnx_path = export_centernet_onnx(model, folder / f"centernet_{size}.onnx", size)
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    ort_ms, _ = time_calls(lambda _: session.run(None, {"images": x.numpy()}), args.iterations, args.warmup)
    runs = {"torch": torch_ms, "torch_channels_last": torch_cl_ms, "onnxruntime": ort_ms}
    return {"size": size, **{k: summary(v) for k, v in runs.items()}}


def run(args: argparse.Namespace) -> dict[str, Any]:
    image = cv2.imread(str(args.frame), cv2.IMREAD_COLOR)
    if image is None:
        raise PretrainedModelError(f"{args.frame}: not a readable image, pass --frame")
    torch.set_num_threads(args.threads)
    model = load_centernet(args.model, ROAD_CLASSES)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench_size(model, image, size, Path(tmp), args) for size in args.sizes]
    return {
        "load_average": os.getloadavg(),
        "threads": args.threads,
        "iterations": args.iterations,
        "torch_version": torch.__version__,
        "onnxruntime_version": ort.__version__,
        "rows": rows,
    }


def table(out: dict[str, Any]) -> str:
    lines = [
        f"CenterNet-MobileNetV3 (road classes), {out['threads']} threads, {out['iterations']} calls "
        f"(torch {out['torch_version']}, onnxruntime {out['onnxruntime_version']}; load average "
        f"after: {', '.join(f'{v:.1f}' for v in out['load_average'])})",
        "ms per frame, p50 / p95 / min",
        "| input | PyTorch NCHW | PyTorch channels_last | ONNX Runtime | ORT FPS (p50) |",
        "|---|---|---|---|---|",
    ]
    for row in out["rows"]:
        cells = ["{p50_ms:.0f} / {p95_ms:.0f} / {min_ms:.0f}".format(**row[k]) for k in RUNTIMES]
        lines.append(f"| {row['size']}² | {' | '.join(cells)} | {1e3 / row['onnxruntime']['p50_ms']:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Run, print a table (or JSON); errors exit 1 with `ERROR: ...` on stderr."""
    args = parse_args(argv)
    try:
        out = run(args)
    except PretrainedModelError as err:
        raise SystemExit(f"ERROR: {err}") from err
    print(json.dumps(out, indent=2) if args.json else table(out))


if __name__ == "__main__":
    main()
