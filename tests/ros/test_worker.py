"""The node's worker under injected faults, in this process: it survives errors; if it dies, ERROR.

Over DDS no input can make the pipeline raise anything but a PipelineError any more, so the
faults are injected into a real FusionNode's pipeline here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter
from ros_harness import domain_id, image, real_pair

from fusion_node.pipeline import Pair
from fusion_node.ros.health import Level
from fusion_node.ros.node import FusionNode, Received


@pytest.fixture
def node(contract_model: Callable[..., Path]) -> Iterator[FusionNode]:
    context = Context()
    rclpy.init(context=context, domain_id=domain_id(3))
    fusion = FusionNode(
        context=context, parameter_overrides=[Parameter("model_path", value=str(contract_model()))]
    )
    try:
        yield fusion
    finally:
        fusion.destroy_node()
        rclpy.shutdown(context=context)


def pair(stamp_ns: int) -> tuple[int, Pair[Received], float]:
    """A slot item (epoch 0, the pair as received, hand-over time) as the callbacks put it."""
    ir, visible = real_pair(64, 96)
    now = time.monotonic()
    return (
        0,
        Pair(
            ir=Received(image(ir, "mono8", stamp_ns, "ir"), stamp_ns, "ir", now),
            visible=Received(image(visible, "bgr8", stamp_ns, "visible"), stamp_ns, "visible", now),
        ),
        now,
    )


def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_any_exception_skips_one_pair_and_the_worker_goes_on(
    node: FusionNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = node._health
    with monkeypatch.context() as patch:
        patch.setattr(node._pipeline, "process", lambda *_: np.zeros(3)[5])  # an IndexError: a bug
        node._slot.put(pair(1))
        until(lambda: health.report(time.monotonic()).values["failed"] == 1, "the failed pair")
    report = health.report(time.monotonic())
    assert report.level == Level.WARN and "pair at visible stamp 1 ns: IndexError" in report.message
    node._slot.put(pair(2))
    until(lambda: health.report(time.monotonic()).values["outputs"] == 1, "the next pair's output")
    assert node._worker.is_alive()


def test_a_dead_worker_is_an_error_that_says_why(node: FusionNode, monkeypatch: pytest.MonkeyPatch) -> None:
    def exit_thread(*_: object) -> None:
        raise SystemExit("injected")  # not an Exception: nothing in the worker may catch it

    monkeypatch.setattr(node._pipeline, "process", exit_thread)
    node._slot.put(pair(1))
    node._worker.join(timeout=10.0)
    assert not node._worker.is_alive()
    report = node._health.report(time.monotonic())
    assert report.level == Level.ERROR and report.values["worker"] == "stopped"
    assert "worker stopped, nothing will be published: SystemExit: injected" in report.message
