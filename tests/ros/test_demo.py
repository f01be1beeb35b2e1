"""The demo end to end: real node subprocess, bundled sample over DDS, outputs bag and report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from ros_harness import REPO, domain_id, ignore_sigint, process_environ, ros_env
from rosbags.highlevel import AnyReader

from fusion_node.cli import build_parser, main
from fusion_node.replay.bagio import make_typestore
from fusion_node.ros import dds
from fusion_node.ros.demo import run_demo
from fusion_node.shutdown import SHUTDOWN_BOUND_S


def test_demo_records_every_output_and_reports(
    contract_model: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id(2)))
    assert run_demo(tmp_path, model_path=contract_model(), rate_hz=20.0, loops=1) == tmp_path / "report.md"
    bag = tmp_path / "outputs"
    with AnyReader([bag], default_typestore=make_typestore()) as reader:
        counts = Counter(c.topic for c, _, _ in reader.messages())
        detections = [
            reader.deserialize(raw, c.msgtype)
            for c, _, raw in reader.messages()
            if c.topic == "/fusion_node/detections"
        ]
    fused = counts["/fusion_node/fused"]
    assert fused >= 1
    for topic in ("detections", "segmentation", "segmentation/color", "debug_image"):
        assert counts[f"/fusion_node/{topic}"] == fused, topic
    assert counts["/diagnostics"] >= 1
    # The contract model's one box (0.1, 0.2, 0.4, 0.6) on the 640×480 sample, class 1 = "car".
    box = detections[0].detections[0]
    assert box.results[0].hypothesis.class_id == "1"  # the class index (~/label_info names it)
    assert (box.bbox.center.position.x, box.bbox.size_x) == pytest.approx((160.0, 192.0), abs=0.5)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frames_out"] == fused and report["frames_in"] == 6
    assert (tmp_path / "contact_sheet.png").is_file() and (tmp_path / "report.md").is_file()


def test_demo_without_a_trained_model_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FUSION_NODE_MODEL", str(tmp_path / "absent.onnx"))
    assert main(["demo", "--output", str(tmp_path / "out")]) == 1  # the CLI edge prints the error
    assert capsys.readouterr().err.startswith("ERROR: the demo needs a trained model")
    assert not (tmp_path / "out").exists()


def test_demo_gives_the_large_image_dds_profile_unless_one_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """The launch file's rule (fusion_node/ros/dds.py), with the profile from the package data."""
    monkeypatch.delenv(dds.PROFILE_ENV, raising=False)
    assert dds.profile_env() == {dds.PROFILE_ENV: str(dds.PACKAGE_PROFILE)}
    assert dds.PACKAGE_PROFILE.read_bytes() == (REPO / dds.PROFILE).read_bytes()  # the link resolves
    monkeypatch.setenv(dds.PROFILE_ENV, "/etc/my_profile.xml")
    assert dds.profile_env() == {}


def test_the_demo_command_is_not_interrupted_inside_rclpy() -> None:
    """A signal only recorded while the demo spins rclpy: raised at its loops' next wake-up."""
    assert build_parser().parse_args(["demo"]).interrupt is False
    assert build_parser().parse_args(["bench"]).interrupt is True  # no rclpy there


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_demo_stops_cleanly_on_a_signal_although_sigint_was_ignored(
    signum: signal.Signals, contract_model: Callable[..., Path], tmp_path: Path
) -> None:
    """`fusion-node demo` from a background job: it and its node stop cleanly on SIGINT and SIGTERM.

    Its node runs with the large-image DDS profile, as the launch file gives it.
    """
    out = tmp_path / "out"
    argv = ["demo", "--output", str(out), "--model", str(contract_model())]
    env = ros_env(domain_id(2))
    env.pop(dds.PROFILE_ENV, None)  # the demo's own choice is tested
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusion_node.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=ignore_sigint,
        start_new_session=True,  # the demo and its node in one group: the finally kills both
    )
    try:
        log = out / "node.log"
        deadline = time.monotonic() + 60.0
        while not (log.is_file() and "ready:" in log.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert proc.poll() is None, "the demo ended before it could be interrupted"
        params = str(out / "params.yaml")
        node_env = process_environ(lambda argv: "fusion_node.ros.node" in argv and params in argv)
        assert node_env[dds.PROFILE_ENV] == str(dds.PACKAGE_PROFILE)
        start = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30.0)
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signum, err
    assert f"stopped by {signum.name}" in err and "Traceback" not in err, err
    # The demo stopped its node with SIGINT (inherited ignored there too), and the node shut down.
    assert "shut down on SIGINT" in log.read_text()
    assert seconds <= 2 * SHUTDOWN_BOUND_S  # the demo's own bound, then its node's
