"""Every benchmark script starts: its imports and options still match the code it measures.

Benchmarks are run by hand, so a refactor that moves what they import would otherwise go unnoticed
until someone needs a number (bench_node.py did once: fusion_node/bench.py took over its helpers).
"""

from __future__ import annotations

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
