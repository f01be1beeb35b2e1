"""QoS over real DDS: defaults, qos_overrides parameters, and the incompatible-QoS WARN."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSReliabilityPolicy, qos_profile_sensor_data
from ros_harness import (
    HEIGHT,
    NODE,
    VISIBLE_FRAME,
    WIDTH,
    NodeProcess,
    RosClient,
    client,
    dict_of,
    domain_id,
    image,
    node_parameters,
)
from sensor_msgs.msg import Image

OFFSET = 3  # DDS domain offset: test_variants, test_worker and test_launch_config use it too, never at once
VISIBLE = "/camera/image_raw"


@pytest.fixture(scope="module")
def ros(contract_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RosClient]:
    """A node whose visible subscription is overridden to reliable (the default is best effort) and
    whose debug image is overridden to best effort (outputs default to reliable)."""
    overrides = {
        VISIBLE: {"subscription": {"reliability": "reliable"}},
        f"{NODE}/debug_image": {"publisher": {"reliability": "best_effort"}},
    }
    parameters = node_parameters(contract_model(), reliability="best_effort", qos_overrides=overrides)
    with NodeProcess(tmp_path_factory.mktemp("qos"), domain_id(OFFSET), parameters) as node:
        node.wait_for_line("ready:")
        with client(domain_id(OFFSET)) as ros:
            ros.subscribe(DiagnosticArray, "/diagnostics")
            yield ros


def reliability(infos: list) -> set[QoSReliabilityPolicy]:
    return {info.qos_profile.reliability for info in infos if info.node_name == "fusion_node"}


def test_defaults_and_overrides_apply(ros: RosClient) -> None:
    def discovered() -> bool:
        return bool(reliability(ros.node.get_subscriptions_info_by_topic(VISIBLE))) and bool(
            reliability(ros.node.get_publishers_info_by_topic(f"{NODE}/debug_image"))
        )

    ros.wait_until(discovered, 20.0, "the node's endpoints")
    assert reliability(ros.node.get_subscriptions_info_by_topic(VISIBLE)) == {QoSReliabilityPolicy.RELIABLE}
    sensor = reliability(ros.node.get_subscriptions_info_by_topic("/thermal/image_raw"))
    assert sensor == {QoSReliabilityPolicy.BEST_EFFORT}  # the `reliability` parameter: the default
    assert reliability(ros.node.get_publishers_info_by_topic(f"{NODE}/fused")) == {
        QoSReliabilityPolicy.RELIABLE
    }
    debug = reliability(ros.node.get_publishers_info_by_topic(f"{NODE}/debug_image"))
    assert debug == {QoSReliabilityPolicy.BEST_EFFORT}


def test_a_best_effort_camera_on_a_reliable_subscription_warns_with_topic_and_policy(ros: RosClient) -> None:
    publisher = ros.node.create_publisher(Image, VISIBLE, qos_profile_sensor_data)
    visible = image(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "bgr8", 1, VISIBLE_FRAME)

    def warns(msg: DiagnosticArray) -> bool:
        status = msg.status[0]
        return status.level == DiagnosticStatus.WARN and f"incompatible QoS on {VISIBLE}" in status.message

    status = ros.wait_for("/diagnostics", warns, publish=lambda: publisher.publish(visible)).status[0]
    assert "RELIABILITY" in status.message and f"qos_overrides.{VISIBLE}.subscription" in status.message
    assert dict_of(status)["qos_incompatible"] == f"{VISIBLE}:RELIABILITY"
