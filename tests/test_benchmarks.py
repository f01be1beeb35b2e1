"""Every benchmark script starts: its imports and options still match the code it measures.

Benchmarks are run by hand, so a refactor that moves what they import would otherwise go unnoticed
until someone needs a number (bench_node.py did once: fusion_node/bench.py took over its helpers).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))


def test_there_are_benchmarks() -> None:
    assert {p.name for p in BENCHMARKS} >= {"bench_pipeline.py", "bench_node.py", "bench_train.py"}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_script_starts(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


ANCHOR = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "bdlfusion"


@pytest.mark.skipif(not ANCHOR.is_dir(), reason=f"needs the BDLFusion anchor at {ANCHOR}")
def test_pipeline_benchmark_times_the_official_nets_beside_ours() -> None:
    """One short real run: the anchor's fusion net and FCOS body are timed and the ratios computed."""
    script = next(p for p in BENCHMARKS if p.name == "bench_pipeline.py")
    done = subprocess.run(
        [sys.executable, str(script), "--iterations", "2", "--anchor-iterations", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    anchor = json.loads(done.stdout)["anchor"]
    for name in ("torch_eager", "onnxruntime", "fcos_body_torch"):
        assert anchor[name]["p50_ms"] > 0, name
    assert anchor["detector_speedup"] > 0 and anchor["speedup_vs_torch"] > 0
