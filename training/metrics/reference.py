"""The reference metric tables of the TNO benchmark, and a check of our metrics against them.

``python -m training.metrics.reference [--data ../shared/data/tno]`` recomputes every metric that
has a reference CSV on all baseline outputs and prints the worst relative error per metric.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from training.metrics.errors import MetricsError
from training.metrics.fusion import METRICS, fusion_metrics, read_gray
from training.paths import TNO

REFERENCE_METRICS = tuple(n for n in METRICS if n != "SSIM")
"""Metrics with a ``Metric_TNO__<NAME>.csv`` reference table (all but SSIM)."""


def load_reference(ref_dir: Path, metric: str, *, dataset: str = "TNO") -> dict[str, list[float]]:
    """Method → per-image values (image 01 first) from ``Metric_<dataset>__<metric>.csv``.

    The file has two header rows (a filler row, then the method names), then one row per image.
    """
    path = ref_dir / f"Metric_{dataset}__{metric}.csv"
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except OSError as err:
        raise MetricsError(f"cannot read reference table {path}: check --data points at tno/") from err
    if len(rows) < 3:
        raise MetricsError(f"{path} has {len(rows)} rows: expected two header rows and one row per image")
    methods = rows[1]
    return {m: [float(r[j]) for r in rows[2:]] for j, m in enumerate(methods)}


def worst_relative_errors(tno_dir: Path, images: Sequence[int]) -> dict[str, float]:
    """Worst relative error per reference metric over every baseline method and the given images."""
    refs = {n: load_reference(tno_dir / "reference_metrics", n) for n in REFERENCE_METRICS}
    worst = dict.fromkeys(REFERENCE_METRICS, 0.0)
    for i in tqdm(images, desc="reference check", unit="image"):
        ir = read_gray(tno_dir / "ir" / f"{i:02d}.png")
        vis = read_gray(tno_dir / "vi" / f"{i:02d}.png")
        for method in refs["EN"]:
            fused = read_gray(tno_dir / "baselines" / method / f"{i:02d}.png")
            for name, value in fusion_metrics(fused, ir, vis, REFERENCE_METRICS).items():
                expected = refs[name][method][i - 1]
                worst[name] = max(worst[name], abs(value - expected) / max(abs(expected), 1e-12))
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the worst relative error per metric on all 42 TNO images."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=TNO, help="TNO folder")
    args = parser.parse_args(argv)
    try:
        worst = worst_relative_errors(args.data, range(1, 43))
    except MetricsError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    for name, rel in worst.items():
        print(f"{name:5s} worst relative error {rel:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
