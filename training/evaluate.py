"""fusion-eval: fusion metrics of our model (or a folder of fused images) against published baselines.

Writes to --out: ``metrics.md`` (means per method, best in bold, how many baselines ours beats),
``metrics.csv`` (every image × method) and ``contact_sheet.png`` (IR | VIS | ours | baselines).
Metric conventions are the reference MATLAB code's; see training/metrics/fusion.py.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fusion_node.pipeline import PipelineError
from fusion_node.pipeline.pair_files import ImagePair, find_pairs, list_images, read_pair
from fusion_node.pipeline.visualize import labelled_tile, stack_rows
from training import eval_detection
from training.config import ConfigError, load_config
from training.data.config import fusion_val_pairs
from training.data.errors import DataError
from training.export import ExportError, export_checkpoint
from training.metrics.errors import MetricsError
from training.metrics.fusion import GOAL_METRICS, LOWER_IS_BETTER, METRICS, fusion_metrics, read_gray, to_gray
from training.models.fusion import contrast_sum
from training.paths import TNO
from training.pipelines import pipelines_by_size

SHEET_PAIRS = 3
SHEET_BASELINES = 3
SHEET_TILE_HEIGHT = 192

Fuser = Callable[[ImagePair], np.ndarray]
"""Makes (or loads) the fused image of one pair: uint8 BGR H×W×3 or gray H×W."""

Results = dict[str, dict[str, dict[str, float]]]
"""method → image name → metric → value."""


def _fused_images(folder: Path) -> dict[str, Path]:
    """A method's fused images by pair name (``folder/NAME.*``, as the pairs are named)."""
    try:
        return list_images(folder, recursive=True)
    except PipelineError as err:
        raise MetricsError(str(err)) from err


def _read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MetricsError(f"cannot read {path}: check that it is a valid image file")
    return image


def dir_fuser(folder: Path) -> Fuser:
    """Fused images already on disk: ``folder/NAME.*`` for each pair."""
    images = _fused_images(folder)

    def fuse(pair: ImagePair) -> np.ndarray:
        if pair.name not in images:
            raise MetricsError(f"no fused image {pair.name}.* in {folder}: fuse every pair of --data first")
        return _read_bgr(images[pair.name])

    return fuse


def model_fuser(model: Path) -> Fuser:
    """Our ONNX model through the product's own runtime (FusionPipeline), fused output in BGR.

    Each pair runs at its own size rounded to the model's size divisor (one pipeline per size),
    not at the model's default input size: the metrics compare against full-resolution sources,
    and a down-and-up resize would cost SF/AG that the network did not lose.
    """
    pipeline_for = pipelines_by_size(model)

    def fuse(pair: ImagePair) -> np.ndarray:
        try:
            ir, vis = read_pair(pair)
            return pipeline_for(*vis.shape[:2]).process(ir, vis).fused
        except PipelineError as err:
            raise MetricsError(f"pair {pair.name}: {err}") from err

    return fuse


RULES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mean": lambda ir, y: (ir.astype(np.float32) + y) / 2,
    "max": np.maximum,
    "contrast sum": lambda ir, y: contrast_sum(ir.astype(np.float32), y, ir.mean(), y.mean()),
}
"""The trivial fusions of IR and visible Y (--trivial) a learned model must also beat; the contrast
sum is where fusion_net.output=additive starts (training/models/fusion.py)."""


def rule_fuser(rule: str) -> Fuser:
    """RULES[rule] of the IR and the visible Y, recoloured with the visible CrCb (as our model is)."""

    def fuse(pair: ImagePair) -> np.ndarray:
        ir, vis = read_pair(pair)
        ycrcb = cv2.cvtColor(vis, cv2.COLOR_BGR2YCrCb)
        fused_y = RULES[rule](ir, ycrcb[..., 0])
        ycrcb[..., 0] = np.clip(np.rint(fused_y), 0, 255).astype(np.uint8)
        return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)

    return fuse


def _export(checkpoint: Path, out_dir: Path) -> Path:
    """Export a training checkpoint (ablations) to ``out_dir``, parity checked."""
    try:
        return export_checkpoint(checkpoint, out_dir / f"{checkpoint.stem}.onnx")[0]
    except ExportError as err:
        raise MetricsError(f"exporting {checkpoint} failed: {err}") from err


def find_baselines(
    baselines_dir: Path | None, pairs: Sequence[ImagePair]
) -> tuple[dict[str, Fuser], list[str]]:
    """Baseline methods (sub-folders) holding a fused image for every pair, and those skipped."""
    if baselines_dir is None or not baselines_dir.is_dir():
        return {}, []
    found: dict[str, Fuser] = {}
    skipped = []
    for folder in sorted(p for p in baselines_dir.iterdir() if p.is_dir()):
        if {pair.name for pair in pairs} <= _fused_images(folder).keys():
            found[folder.name] = dir_fuser(folder)
        else:
            skipped.append(folder.name)
    return found, skipped


def evaluate(pairs: Sequence[ImagePair], methods: dict[str, Fuser]) -> Results:
    """Every fusion metric for every method on every pair (sources read as MATLAB gray)."""
    results: Results = {m: {} for m in methods}
    for pair in tqdm(pairs, desc="fusion-eval", unit="pair"):
        ir, vis = read_gray(pair.ir), read_gray(pair.visible)
        for method, fuse in methods.items():
            fused = to_gray(fuse(pair))
            if fused.shape != ir.shape:
                raise MetricsError(
                    f"{method} fused {pair.name} is {fused.shape[::-1]}, the sources {ir.shape[::-1]}: "
                    "fused images must have the sources' size"
                )
            results[method][pair.name] = fusion_metrics(fused, ir, vis)
    return results


def means(results: Results) -> dict[str, dict[str, float]]:
    """method → metric → mean over images."""
    return {
        m: {n: float(np.mean([r[n] for r in per.values()])) for n in METRICS} for m, per in results.items()
    }


def _better(a: float, b: float, metric: str) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


def write_csv(results: Results, path: Path) -> None:
    """One row per (method, image) with every metric."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "image", *METRICS])
        for method, per in results.items():
            for image, values in per.items():
                writer.writerow([method, image, *(repr(values[n]) for n in METRICS)])


def markdown_table(
    results: Results, ours: str, *, baselines: Sequence[str], skipped: Sequence[str] = ()
) -> str:
    """Means per method (rows) and metric (columns), best per column in bold, then ours vs baselines.

    Rows that are neither `ours` nor a baseline (models given with --compare, trivial fusions) are
    listed but not counted as baselines. Last, per other row: on how many of GOAL_METRICS ours beats it.
    """
    avg = means(results)
    best = {n: (min if n in LOWER_IS_BETTER else max)(v[n] for v in avg.values()) for n in METRICS}
    n_images = len(next(iter(results.values())))
    against = f" vs {len(baselines)} baselines" if baselines else ""
    lines = [
        f"# Fusion metrics: {ours}{against}, mean over {n_images} image pairs",
        "",
        "| method | " + " | ".join(METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for method, values in avg.items():
        cells = [f"**{values[n]:.4f}**" if values[n] == best[n] else f"{values[n]:.4f}" for n in METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", f"Higher is better except {', '.join(sorted(LOWER_IS_BETTER))}.", ""]
    if baselines:
        for n in METRICS:
            beaten = [b for b in baselines if _better(avg[ours][n], avg[b][n], n)]
            lines.append(f"- {n}: {ours} beats {len(beaten)} of {len(baselines)} baselines")
        lines.append("")
    lines += [
        f"Per method, the {len(GOAL_METRICS)} goal metrics ({' '.join(GOAL_METRICS)}) {ours} beats it on:",
    ]
    for other in (m for m in avg if m != ours):
        won = [n for n in GOAL_METRICS if _better(avg[ours][n], avg[other][n], n)]
        lines.append(f"- {other}: {len(won)} of {len(GOAL_METRICS)} ({' '.join(won) or 'none'})")
    lines += [
        "",
        "Conventions: the MATLAB code of Linfeng-Tang/Image-Fusion (quirks included; SSIM is the sum over "
        "both sources); see training/metrics/fusion.py.",
    ]
    if skipped:
        lines.append(f"Skipped baselines (missing images): {', '.join(skipped)}.")
    return "\n".join(lines) + "\n"


def contact_sheet(pairs: Sequence[ImagePair], methods: dict[str, Fuser]) -> np.ndarray:
    """Rows of labelled tiles IR | VIS | each method, one row per pair; rows padded to one width."""
    rows = []
    for pair in pairs:
        images = {f"IR {pair.name}": _read_bgr(pair.ir), "VIS": _read_bgr(pair.visible)}
        images.update((method, fuse(pair)) for method, fuse in methods.items())
        tiles = [labelled_tile(image, label, SHEET_TILE_HEIGHT) for label, image in images.items()]
        rows.append(np.hstack(tiles))
    return stack_rows(rows)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fusion-eval", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task", choices=("fusion", "detection"), default="fusion",
        help="fusion: metrics vs baselines on --data; detection: the detector on the labelled pairs "
        "(training/eval_detection.py; needs --model)",
    )  # fmt: skip
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="exported ONNX model (run through FusionPipeline)")
    source.add_argument("--checkpoint", type=Path, help="training checkpoint, exported to a temp ONNX")
    source.add_argument(
        "--fused-dir", type=Path, help="evaluate existing fused images NAME.* instead of a model"
    )
    pairs = parser.add_mutually_exclusive_group()
    pairs.add_argument("--data", type=Path, default=TNO, help="folder with ir/ and vi/ (default: TNO)")
    pairs.add_argument(
        "--val-of", type=Path, metavar="CONFIG",
        help="instead of --data: the fusion validation pairs that a training config (a recipe YAML or "
        "a run's config.yaml) holds out, baselines only from --baselines: choose between models as "
        "the trainer would",
    )  # fmt: skip
    parser.add_argument("--baselines", type=Path, help="folder of <method>/NAME.* (default: DATA/baselines)")
    parser.add_argument("--out", type=Path, help="default: runs/eval_TASK")
    parser.add_argument("--name", default="ours", help="row name of the evaluated method")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="another exported ONNX model evaluated beside ours, e.g. an ablation (repeatable)",
    )
    parser.add_argument(
        "--trivial",
        action="store_true",
        help=f"add the trivial fusions {', '.join(RULES)} of IR and visible Y",
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N pairs (quick checks)")
    eval_detection.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.task == "detection" and args.model is None:
        parser.error("--task detection needs --model (an exported ONNX model)")
    args.out = args.out or Path(f"runs/eval_{'tno' if args.task == 'fusion' else 'detection'}")
    return args


def run(args: argparse.Namespace) -> Path:
    """Evaluate as the parsed command line says; returns the markdown table's path."""
    if args.val_of is not None:
        try:
            pairs = fusion_val_pairs(load_config(args.val_of).data)[: args.limit]
        except (ConfigError, DataError) as err:
            raise MetricsError(f"--val-of {args.val_of}: {err}") from err
        baselines_dir = args.baselines  # none unless --baselines names some
    else:
        try:
            pairs = find_pairs(args.data, strict=True)[: args.limit]
        except PipelineError as err:
            raise MetricsError(f"--data: {err}") from err
        baselines_dir = args.baselines or args.data / "baselines"
    baselines, skipped = find_baselines(baselines_dir, pairs)
    compared = dict(_name_and_path(spec) for spec in args.compare)
    rules = {rule: rule_fuser(rule) for rule in RULES} if args.trivial else {}
    for name in (args.name, *compared, *rules):
        if name in baselines:
            raise MetricsError(f"{name!r} is also a baseline folder: pick another name for the table row")
    with tempfile.TemporaryDirectory(prefix="fusion-eval-") as tmp:
        if args.fused_dir is not None:
            ours = dir_fuser(args.fused_dir)
        else:
            ours = model_fuser(_export(args.checkpoint, Path(tmp)) if args.checkpoint else _model(args.model))
        models = {n: model_fuser(_model(m)) for n, m in compared.items()}
        methods = {args.name: ours, **models, **rules, **baselines}
        results = evaluate(pairs, methods)
        sheet = contact_sheet(pairs[:SHEET_PAIRS], dict(list(methods.items())[: 1 + SHEET_BASELINES]))
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(results, args.out / "metrics.csv")
    table = args.out / "metrics.md"
    table.write_text(markdown_table(results, args.name, baselines=list(baselines), skipped=skipped))
    cv2.imwrite(str(args.out / "contact_sheet.png"), sheet)
    return table


def _model(path: Path) -> Path:
    if not path.is_file():
        raise MetricsError(f"model {path} not found: export one with fusion-export or pass --fused-dir")
    return path


def _name_and_path(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise MetricsError(f"--compare {spec!r}: expected NAME=MODEL.onnx, e.g. fusion_only=runs/fo.onnx")
    return name, Path(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``fusion-eval`` entry point; errors print ``ERROR: ...`` and exit 1."""
    args = _parse_args(argv)
    try:
        if args.task == "detection":
            size, limit = args.detector_size, args.limit
            compare = dict(_name_and_path(spec) for spec in args.compare)
            table = eval_detection.run(args.model, args.out, detector_size=size, compare=compare, limit=limit)
        else:
            table = run(args)
    except MetricsError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(table.read_text())
    print(f"wrote {', '.join(str(p) for p in sorted(args.out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
