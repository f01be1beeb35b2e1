"""Lazy work over real DDS: only subscribed outputs are built, only processed pairs are decoded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from ros_harness import (
    NODE,
    VISIBLE_FRAME,
    Camera,
    NodeProcess,
    client,
    dict_of,
    domain_id,
    fresh,
    image,
    node_parameters,
)
from sensor_msgs.msg import Image

OFFSET = 2  # DDS domain offset: test_demo uses it too, never at the same time
UNPAIRED = 8  # visible frames sent without an IR partner: fewer than queue_depth (10), none lost


@pytest.fixture(scope="module")
def camera(contract_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Camera]:
    parameters = node_parameters(contract_model())
    with NodeProcess(tmp_path_factory.mktemp("lazy"), domain_id(OFFSET), parameters) as node:
        node.wait_for_line("ready:")
        with client(domain_id(OFFSET)) as ros:
            ros.subscribe(Image, f"{NODE}/fused")
            ros.subscribe(DiagnosticArray, "/diagnostics")
            cam = Camera(ros)
            fresh(cam, f"{NODE}/fused")  # discovered both ways
            yield cam


def diagnostics(camera: Camera, check: Callable[[dict[str, str]], bool]) -> dict[str, str]:
    """Values of the first /diagnostics from now on that pass `check`."""
    msg = camera.ros.wait_for("/diagnostics", lambda m: check(dict_of(m.status[0])))
    return dict_of(msg.status[0])


def test_only_subscribed_outputs_are_built_and_a_late_subscriber_starts_one(camera: Camera) -> None:
    fresh(camera, f"{NODE}/fused")
    values = diagnostics(camera, lambda v: int(v["outputs"]) > 0)
    assert values["outputs_built"] == "fused"  # no overlay drawn, no segmentation built
    assert "fused:1" in values["subscribers"] and "debug_image:0" in values["subscribers"]
    assert float(values["inference_ms"]) > 0.0 and float(values["publish_ms"]) > 0.0
    assert 0.0 < float(values["overhead_p50_ms"]) <= float(values["overhead_p95_ms"])

    camera.ros.subscribe(Image, f"{NODE}/debug_image")
    debug = fresh(camera, f"{NODE}/debug_image")  # the overlay starts once someone watches it
    assert debug.header.frame_id == VISIBLE_FRAME
    values = diagnostics(camera, lambda v: "debug_image:1" in v["subscribers"])
    assert values["outputs_built"] == "fused,debug_image"


def settled(values: dict[str, str]) -> bool:
    """Every pair formed is published or was dropped undecoded, and exactly the published pairs'
    frames were decoded (no pair is between decode and publish)."""
    outputs = int(values["outputs"])
    handled = int(values["pairs"]) == outputs + int(values["dropped"])
    return handled and int(values["decoded"]) == 2 * outputs > 0


def test_only_the_pairs_processed_are_decoded(camera: Camera) -> None:
    fresh(camera, f"{NODE}/fused")
    before = diagnostics(camera, settled)
    for _ in range(UNPAIRED):  # no IR partner: received, never decoded
        camera.visible_pub.publish(image(camera.visible, "bgr8", camera.stamp(), VISIBLE_FRAME))
    after = diagnostics(
        camera,
        lambda v: settled(v) and int(v["visible_received"]) >= int(before["visible_received"]) + UNPAIRED,
    )
    assert int(after["ir_received"]) + int(after["visible_received"]) >= int(after["decoded"]) + UNPAIRED
    fresh(camera, f"{NODE}/fused")  # pairs again: the queued visible frames are dropped undecoded
    final = diagnostics(camera, settled)
    assert int(final["outputs"]) > int(after["outputs"])
    assert int(final["unpaired"]) >= int(before["unpaired"]) + UNPAIRED
