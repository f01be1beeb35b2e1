"""Fault injection over real DDS: each fault shows on /diagnostics, and good pairs are fused again.

One node for the whole module, with short windows so that levels change within seconds; it ends
with SIGTERM (started with SIGINT ignored), which must stop it cleanly within the bound.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from ros_harness import (
    HEIGHT,
    IR_DELAY_NS,
    IR_FRAME,
    NODE,
    REPO,
    WIDTH,
    Camera,
    NodeProcess,
    client,
    dict_of,
    domain_id,
    fresh,
    image,
    node_parameters,
    stamp_ns,
)
from sensor_msgs.msg import Image

OFFSET = 1  # DDS domain offset: test_variants' nodes use it too, never at the same time
WINDOW_S, STALL_S, INPUT_TIMEOUT_S = 1.0, 2.0, 1.0
TIMEOUT_S = 15.0  # longest wait for one expected state


@pytest.fixture(scope="module")
def node(
    contract_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    parameters = node_parameters(
        contract_model(),
        diagnostics_window_s=WINDOW_S,
        stall_timeout_s=STALL_S,
        input_timeout_s=INPUT_TIMEOUT_S,
    )
    with NodeProcess(tmp_path_factory.mktemp("faults"), domain_id(OFFSET), parameters) as proc:
        proc.wait_for_line("ready:")
        yield proc


@pytest.fixture(scope="module")
def camera(node: NodeProcess) -> Iterator[Camera]:
    with client(domain_id(OFFSET)) as ros:
        ros.subscribe(Image, f"{NODE}/fused")
        ros.subscribe(DiagnosticArray, "/diagnostics")
        cam = Camera(ros)
        fresh(cam, f"{NODE}/fused")  # discovered both ways
        yield cam


def diagnosis(camera: Camera, level: bytes, publish: Callable[[], Any], *texts: str) -> dict[str, str]:
    """Values of the first /diagnostics at `level` whose message has every text (publishing meanwhile)."""

    def matches(msg: DiagnosticArray) -> bool:
        status = msg.status[0]
        return status.level == level and all(text in status.message for text in texts)

    msg = camera.ros.wait_for("/diagnostics", matches, timeout=TIMEOUT_S, publish=publish)
    return {"message": msg.status[0].message, **dict_of(msg.status[0])}


def recovers(camera: Camera) -> dict[str, str]:
    """Good pairs are fused again, and /diagnostics returns to OK once the window has passed."""
    fresh(camera, f"{NODE}/fused")
    values = diagnosis(camera, DiagnosticStatus.OK, camera.pair, "running")
    assert int(values["outputs_in_window"]) > 0 and float(values["fps"]) > 0.0
    return values


def documented_keys() -> set[str]:
    """The keys in the first column of docs/diagnostics.md's key table."""
    section = (REPO / "docs" / "diagnostics.md").read_text().split("## Keys", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {key for row in rows for key in re.findall(r"`([a-z0-9_]+)`", row)}


def test_starts_ok_with_every_counter_and_every_key_documented(camera: Camera) -> None:
    values = recovers(camera)
    assert set(values) - {"message"} == documented_keys()
    for key in (
        "pairs",
        "dropped",
        "failed",
        "stale",
        "bad_input",
        "time_jumps",
        "ir_received",
        "ir_rate_hz",
    ):
        assert key in values, key
    assert int(values["ir_received"]) > 0 and float(values["visible_rate_hz"]) > 0.0


def test_empty_image(node: NodeProcess, camera: Camera) -> None:
    def empty_ir() -> None:
        camera.pair(ir=np.zeros((0, 0), np.uint16))

    values = diagnosis(camera, DiagnosticStatus.WARN, empty_ir, "frames rejected", "image is empty")
    assert int(values["ir_rejected"]) >= 1
    assert "mono16 image is empty" in node.wait_for_line("image is empty")
    recovers(camera)


def test_size_mismatch_errors_when_it_lasts(node: NodeProcess, camera: Camera) -> None:
    small = cv2.resize(camera.visible, (WIDTH // 2, HEIGHT // 2))

    def mismatched() -> None:
        camera.pair(visible=small)

    values = diagnosis(camera, DiagnosticStatus.WARN, mismatched, "pairs failed", "RegistrationError")
    assert int(values["failed_in_window"]) >= 1
    # Frames arrive, nothing is published: ERROR after stall_timeout_s, with the reason.
    error = diagnosis(camera, DiagnosticStatus.ERROR, mismatched, "nothing published for", "no homography")
    assert float(error["fps"]) == 0.0 and float(error["latency_p50_ms"]) == 0.0
    assert "skipped: RegistrationError" in node.wait_for_line("skipped")
    recovers(camera)


def test_bad_encoding(node: NodeProcess, camera: Camera) -> None:
    def yuv() -> None:
        camera.raw_visible("yuv422")

    values = diagnosis(camera, DiagnosticStatus.WARN, yuv, "(visible ", "unsupported image encoding 'yuv422'")
    assert int(values["visible_rejected"]) >= 1
    assert "/camera/image_raw" in node.wait_for_line("unsupported image encoding 'yuv422'")
    recovers(camera)


def test_nan_in_32fc1(node: NodeProcess, camera: Camera) -> None:
    nan_ir = camera.ir8.astype(np.float32)
    nan_ir[10, 10] = np.nan

    def nan() -> None:
        stamp = camera.stamp()
        msg = image(camera.visible, "bgr8", stamp + IR_DELAY_NS, IR_FRAME)
        msg.encoding, msg.step, msg.data = "32FC1", WIDTH * 4, nan_ir.tobytes()
        camera.ir_pub.publish(msg)
        camera.pair()

    diagnosis(camera, DiagnosticStatus.WARN, nan, "(ir ", "NaN/Inf")
    assert "/thermal/image_raw" in node.wait_for_line("NaN/Inf")
    recovers(camera)


def test_stamps_backwards_drop_the_stale_pair_and_advise(node: NodeProcess, camera: Camera) -> None:
    old = camera.stamp() - 3_600_000_000_000  # an hour back, then the live stream again
    before = dict_of(camera.ros.received["/diagnostics"][-1].status[0])
    camera.pair(stamp=old)
    values = diagnosis(camera, DiagnosticStatus.WARN, camera.pair, "went backwards", "--loop", "use_sim_time")
    assert int(values["time_jumps"]) > int(before["time_jumps"])
    assert int(values["stale"]) > int(before["stale"])
    assert "went backwards" in node.wait_for_line("went backwards")
    recovers(camera)
    assert old not in {stamp_ns(m) for m in camera.ros.received[f"{NODE}/fused"]}  # never published


def test_one_camera_silent_then_back(camera: Camera) -> None:
    def visible_only() -> None:
        camera.visible_pub.publish(image(camera.visible, "bgr8", camera.stamp(), "visible_optical_frame"))

    values = diagnosis(
        camera, DiagnosticStatus.WARN, visible_only, "/thermal/image_raw stopped", "the camera or its driver"
    )
    assert float(values["ir_rate_hz"]) < float(values["visible_rate_hz"])
    diagnosis(
        camera, DiagnosticStatus.ERROR, visible_only, "nothing published for", "/thermal/image_raw stopped"
    )
    recovers(camera)


def test_sigterm_stops_cleanly_within_the_bound(node: NodeProcess, camera: Camera) -> None:
    node.assert_clean_stop(signal.SIGTERM)
