"""The lifecycle over real DDS, driven through the node's lifecycle services as a manager would.

One node, started with autostart false and a model path with no file yet: configure fails and
says why, the node survives; once the file is there configure succeeds; outputs flow only while
active; cleanup releases the publishers; SIGINT under load stops it within the bound.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from ros_harness import (
    NODE,
    Camera,
    NodeProcess,
    RosClient,
    client,
    dict_of,
    domain_id,
    fresh,
    node_parameters,
    stamp_ns,
)
from sensor_msgs.msg import Image

OFFSET = 2  # DDS domain offset: test_lazy and test_demo use it too, never at the same time
FUSED = f"{NODE}/fused"
QUIET_S = 1.5  # how long pairs are sent to a node that must not publish


class Manager:
    """The lifecycle services of the node under test, as a lifecycle manager calls them."""

    def __init__(self, ros: RosClient) -> None:
        self.ros = ros
        self._change = ros.node.create_client(ChangeState, f"{NODE}/change_state")
        self._get = ros.node.create_client(GetState, f"{NODE}/get_state")
        assert self._change.wait_for_service(timeout_sec=20.0) and self._get.wait_for_service(
            timeout_sec=20.0
        )

    def _call(self, service: Any, request: Any, what: str) -> Any:
        future = service.call_async(request)
        self.ros.wait_until(future.done, 20.0, what)
        return future.result()

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return bool(self._call(self._change, request, f"transition {transition_id}").success)

    def state(self) -> str:
        return str(self._call(self._get, GetState.Request(), "get_state").current_state.label)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lifecycle_model") / "model.onnx"  # no file yet


@pytest.fixture(scope="module")
def node(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    parameters = node_parameters(model_path, autostart=False)
    with NodeProcess(tmp_path_factory.mktemp("lifecycle"), domain_id(OFFSET), parameters) as proc:
        yield proc


@pytest.fixture(scope="module")
def ros(node: NodeProcess) -> Iterator[RosClient]:
    with client(domain_id(OFFSET)) as ros:
        ros.subscribe(Image, FUSED)
        ros.subscribe(DiagnosticArray, "/diagnostics")
        yield ros


@pytest.fixture(scope="module")
def manager(ros: RosClient) -> Manager:
    return Manager(ros)


def diagnosis(ros: RosClient, level: bytes, *texts: str) -> dict[str, str]:
    """Values of the first /diagnostics from now on at `level` whose message has every text."""

    def matches(msg: DiagnosticArray) -> bool:
        status = msg.status[0]
        return status.level == level and all(text in status.message for text in texts)

    status = ros.wait_for("/diagnostics", matches).status[0]
    return {"message": status.message, **dict_of(status)}


def assert_publishes_nothing(camera: Camera) -> None:
    """Pairs sent for QUIET_S give no output (outputs of earlier pairs do not count)."""
    first = len(camera.visible_stamps)
    deadline = time.monotonic() + QUIET_S
    while time.monotonic() < deadline:
        camera.pair()
        time.sleep(0.05)
    sent = set(camera.visible_stamps[first:])
    assert not [m for m in camera.ros.received[FUSED] if stamp_ns(m) in sent]


def test_without_autostart_it_waits_unconfigured(node: NodeProcess, ros: RosClient, manager: Manager) -> None:
    assert manager.state() == "unconfigured"
    values = diagnosis(ros, DiagnosticStatus.OK, "unconfigured: configure and activate")
    assert values["state"] == "unconfigured"
    assert not ros.node.get_publishers_info_by_topic(FUSED)


def test_failed_configure_says_why_and_the_node_survives(
    node: NodeProcess, ros: RosClient, manager: Manager
) -> None:
    assert not manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == "unconfigured"
    values = diagnosis(ros, DiagnosticStatus.ERROR, "configure failed", "model.onnx")
    assert values["state"] == "unconfigured"
    assert "model.onnx" in node.wait_for_line("configure failed")
    assert "Traceback" not in node.output


def test_configured_it_is_inactive_and_publishes_nothing(
    contract_model: Callable[..., Path], model_path: Path, ros: RosClient, manager: Manager
) -> None:
    shutil.copy(contract_model(), model_path)  # the missing file appears (a mounted volume, a download)
    assert manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == "inactive"
    values = diagnosis(ros, DiagnosticStatus.OK, "inactive: inference paused")
    assert values["state"] == "inactive" and values["model"] == "contract_test"
    assert ros.node.get_publishers_info_by_topic(FUSED)  # the lifecycle publisher exists, disabled
    assert_publishes_nothing(Camera(ros))


def test_active_publishes_and_deactivate_pauses(ros: RosClient, manager: Manager) -> None:
    camera = Camera(ros)
    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    assert manager.state() == "active"
    fresh(camera, FUSED)
    assert diagnosis(ros, DiagnosticStatus.OK, "running")["state"] == "active"
    assert manager.transition(Transition.TRANSITION_DEACTIVATE)
    assert diagnosis(ros, DiagnosticStatus.OK, "inactive")["state"] == "inactive"
    assert_publishes_nothing(camera)
    assert manager.transition(Transition.TRANSITION_ACTIVATE)  # and again: pairing starts afresh
    fresh(camera, FUSED)


def test_cleanup_releases_then_it_configures_again(ros: RosClient, manager: Manager) -> None:
    assert manager.transition(Transition.TRANSITION_DEACTIVATE)
    assert manager.transition(Transition.TRANSITION_CLEANUP)
    assert manager.state() == "unconfigured"
    ros.wait_until(lambda: not ros.node.get_publishers_info_by_topic(FUSED), 10.0, "fused publisher gone")
    assert manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    fresh(Camera(ros), FUSED)


def test_sigint_under_load_stops_within_the_bound(node: NodeProcess, ros: RosClient) -> None:
    """Pairs keep coming as fast as this process sends them while the node is stopped."""
    camera = Camera(ros)
    fresh(camera, FUSED)
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            camera.pair()

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        fresh(camera, FUSED)  # still publishing under this load
        node.assert_clean_stop(signal.SIGINT)
    finally:
        stop.set()
        sender.join(timeout=5.0)
