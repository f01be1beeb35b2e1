"""`fusion-node` subcommands through main(): exit status, `ERROR:` lines, and the benchmark."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader

from fusion_node.cli import main
from fusion_node.replay.bagio import make_typestore
from fusion_node.shutdown import SHUTDOWN_BOUND_S


@pytest.fixture(scope="module")
def model(contract_model: Callable[..., Path]) -> Path:
    return contract_model()


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run main(argv), expect status 1 and return the single `ERROR:` line."""
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ERROR: ") and "Traceback" not in err
    return err


def test_make_bag_then_replay(
    msrs_dir: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = tmp_path / "bag"
    assert main(["make-bag", str(msrs_dir), str(bag), "--rate", "5", "--compressed", "--quiet"]) == 0
    assert "wrote 6 messages" in capsys.readouterr().out
    out = tmp_path / "out"
    assert (
        main(["replay", str(bag), "--out", str(out), "--model", str(model), "--threads", "1", "--quiet"]) == 0
    )
    assert "3 pairs from 6 frames" in capsys.readouterr().out
    assert (out / "outputs" / "outputs.mcap").is_file() and (out / "outputs" / "metadata.yaml").is_file()
    assert json.loads((out / "report.json").read_text())["frames_out"] == 3

    # The same output folder again: refused, nothing overwritten.
    err = error_of(["replay", str(bag), "--out", str(out), "--model", str(model), "--quiet"], capsys)
    assert "exists already" in err
    # Errors of the subsystems: one line each.
    assert "has no visible topic '/cam'" in error_of(
        ["replay", str(bag), "--out", str(tmp_path / "o2"), "--model", str(model), "--visible-topic", "/cam"],
        capsys,
    )
    assert "does not exist" in error_of(
        ["replay", str(tmp_path / "none"), "--out", str(tmp_path / "o3"), "--model", str(model)], capsys
    )
    assert "missing.onnx" in error_of(
        ["replay", str(bag), "--out", str(tmp_path / "o4"), "--model", str(tmp_path / "missing.onnx")], capsys
    )
    mcap = bag / "bag.mcap"
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    assert "ros2 bag reindex" in error_of(
        ["replay", str(bag), "--out", str(tmp_path / "o5"), "--model", str(model)], capsys
    )
    assert "neither ir/" in error_of(["make-bag", str(tmp_path), str(tmp_path / "b2")], capsys)


def test_bench_runs_two_iterations(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--model", str(model), "--iterations", "2", "--warmup", "1", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frame"] == "640x480" and out["iterations"] == 2
    stages = out["ours"]["stages"]
    assert set(stages) == {"preprocess", "inference", "postprocess", "total"}
    assert all(0 < s["p50_ms"] <= s["p95_ms"] for s in stages.values())
    assert out["ours"]["fps"] > 0 and out["frames"] > 0  # the package's bundled sample pairs


def test_bench_without_model_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "nothing.onnx" in error_of(["bench", "--model", str(tmp_path / "nothing.onnx")], capsys)


def test_make_bag_stops_on_sigterm_with_the_bag_closed(msrs_dir: Path, tmp_path: Path) -> None:
    """A long make-bag started with SIGINT ignored, then SIGTERM: exit 143 and a readable bag."""
    bag = tmp_path / "bag"
    argv = [sys.executable, "-m", "fusion_node.cli", "make-bag", str(msrs_dir), str(bag)]
    proc = subprocess.Popen(
        [*argv, "--compressed", "--loops", "100000", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 60.0
        while sum(f.stat().st_size for f in bag.glob("*.mcap")) < 2**20 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30.0)
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143 and "stopped by SIGTERM" in err and "Traceback" not in err, err
    assert seconds <= SHUTDOWN_BOUND_S
    with AnyReader([bag], default_typestore=make_typestore()) as reader:  # closed: index + metadata
        assert reader.message_count > 0
