"""The real node in a subprocess over real DDS: outputs, parameters, bad input, shutdown."""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSDurabilityPolicy, QoSProfile
from ros_harness import (
    HEIGHT,
    NODE,
    VISIBLE_FRAME,
    WIDTH,
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
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

# Two boxes (relative x1, y1, x2, y2, score, class): only the first survives score_threshold 0.7.
BOXES = ((0.1, 0.2, 0.4, 0.6, 0.9, 1), (0.5, 0.5, 0.9, 0.9, 0.5, 0))
CLASSES = ("person", "car")
VISIBLE_INFO = "/camera/camera_info"
OUTPUTS = {
    f"{NODE}/fused": Image,
    f"{NODE}/detections": Detection2DArray,
    f"{NODE}/segmentation": Image,
    f"{NODE}/segmentation/color": Image,
    f"{NODE}/debug_image": Image,
    f"{NODE}/fused/camera_info": CameraInfo,
    "/diagnostics": DiagnosticArray,
}


@pytest.fixture(scope="module")
def node(
    contract_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    model = contract_model(class_names=CLASSES, boxes_rel=BOXES)
    proc = NodeProcess(
        tmp_path_factory.mktemp("node"),
        domain_id(0),
        node_parameters(model, visible_camera_info_topic=VISIBLE_INFO),
    )
    with proc:
        proc.wait_for_line("ready:")
        yield proc


@pytest.fixture(scope="module")
def ros(node: NodeProcess) -> Iterator[RosClient]:
    with client(domain_id(0)) as ros:
        for topic, msg_type in OUTPUTS.items():
            ros.subscribe(msg_type, topic)
        yield ros


@pytest.fixture(scope="module")
def camera(ros: RosClient) -> Camera:
    """The camera pair, once the node is discovered both ways (a first fused output came back)."""
    cam = Camera(ros)
    fresh(cam, f"{NODE}/fused")
    return cam


def test_every_output_carries_the_visible_header_and_geometry(camera: Camera) -> None:
    for topic, encoding in (
        (f"{NODE}/fused", "bgr8"),
        (f"{NODE}/segmentation", "mono8"),
        (f"{NODE}/segmentation/color", "bgr8"),
        (f"{NODE}/debug_image", "bgr8"),
    ):
        msg = fresh(camera, topic)
        assert msg.header.frame_id == VISIBLE_FRAME, topic
        assert (msg.height, msg.width, msg.encoding) == (HEIGHT, WIDTH, encoding), topic
    dets = fresh(camera, f"{NODE}/detections")
    assert dets.header.frame_id == VISIBLE_FRAME
    assert all(d.header == dets.header for d in dets.detections)


def test_fused_camera_info_is_the_visible_calibration_with_the_fused_header(camera: Camera) -> None:
    info_pub = camera.ros.publisher(CameraInfo, VISIBLE_INFO)
    calibration = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob")
    calibration.k = [300.0, 0.0, 160.0, 0.0, 300.0, 120.0, 0.0, 0.0, 1.0]

    def publish() -> None:
        info_pub.publish(calibration)
        camera.pair()

    first = len(camera.visible_stamps)
    topic = f"{NODE}/fused/camera_info"
    msg = camera.ros.wait_for(topic, lambda m: stamp_ns(m) in camera.visible_stamps[first:], publish=publish)
    fused = camera.ros.received[f"{NODE}/fused"]
    camera.ros.wait_until(lambda: any(m.header == msg.header for m in fused), 10.0, "the fused image")
    assert msg.header.frame_id == VISIBLE_FRAME and (msg.width, msg.height) == (WIDTH, HEIGHT)
    assert list(msg.k) == list(calibration.k) and msg.distortion_model == "plumb_bob"


def test_fused_image_is_the_contract_models_max(camera: Camera) -> None:
    msg = fresh(camera, f"{NODE}/fused")
    fused = np.frombuffer(msg.data, np.uint8).reshape(HEIGHT, WIDTH, 3)
    expected = np.maximum(camera.ir8[:, :, None], camera.visible)
    # The model sees a 64×96 resize; compare at that scale, where resampling noise averages out.
    small = [cv2.resize(a, (96, 64), interpolation=cv2.INTER_AREA).astype(float) for a in (fused, expected)]
    assert np.abs(small[0] - small[1]).mean() < 12.0


def test_detections_are_the_contract_boxes_in_visible_pixels(camera: Camera) -> None:
    msg = fresh(camera, f"{NODE}/detections", lambda m: len(m.detections) == 2)
    got = sorted(
        (
            d.results[0].hypothesis.class_id,
            d.results[0].hypothesis.score,
            d.bbox.center.position.x,
            d.bbox.center.position.y,
            d.bbox.size_x,
            d.bbox.size_y,
        )
        for d in msg.detections
    )
    expected = sorted(
        (str(c), s, (x1 + x2) / 2 * WIDTH, (y1 + y2) / 2 * HEIGHT, (x2 - x1) * WIDTH, (y2 - y1) * HEIGHT)
        for x1, y1, x2, y2, s, c in BOXES
    )
    for g, e in zip(got, expected, strict=True):
        assert g[0] == e[0]
        assert np.allclose(g[1:], e[1:], atol=0.5), (g, e)


def subscribe_label_info(ros: RosClient, topic: str) -> None:
    latched = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    ros.subscribe(LabelInfo, f"{NODE}/{topic}", latched)


@pytest.mark.parametrize(
    ("topic", "names", "threshold"),
    [("label_info", CLASSES, 0.35), ("segmentation/label_info", ("background", "hot"), 0.0)],
)
def test_label_info_maps_class_ids_for_late_subscribers(
    camera: Camera, topic: str, names: tuple[str, ...], threshold: float
) -> None:
    """vision_msgs/LabelInfo, transient local: a subscriber joining after it was sent still gets it."""
    subscribe_label_info(camera.ros, topic)
    msg = camera.ros.wait_for(f"{NODE}/{topic}", lambda _: True)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == list(enumerate(names))
    assert math.isclose(msg.threshold, threshold, abs_tol=1e-6)


def test_segmentation_is_hot_ir_in_visible_geometry(camera: Camera) -> None:
    msg = fresh(camera, f"{NODE}/segmentation")
    seg = np.frombuffer(msg.data, np.uint8).reshape(HEIGHT, WIDTH)
    hot = camera.ir8 > 127
    assert set(np.unique(seg)) <= {0, 1}
    iou = np.logical_and(seg == 1, hot).sum() / max(np.logical_or(seg == 1, hot).sum(), 1)
    assert hot.any() and iou > 0.8, iou


def test_diagnostics_report_latency_counts_and_model(camera: Camera) -> None:
    fresh(camera, f"{NODE}/fused")

    def ours(msg: DiagnosticArray) -> bool:
        status = msg.status[0]
        return status.name.startswith("fusion_node") and int(dict_of(status).get("outputs", "0")) > 0

    msg = camera.ros.wait_for("/diagnostics", ours)
    values = dict_of(msg.status[0])
    for key in (
        "latency_p50_ms",
        "latency_p95_ms",
        "fps",
        "pairs",
        "unpaired",
        "time_jumps",
        "backend",
        "model",
        "detection_trained",
        "segmentation_trained",
    ):
        assert key in values, key
    p50, p95 = float(values["latency_p50_ms"]), float(values["latency_p95_ms"])
    assert 0.0 <= p50 <= p95 < 60_000.0
    assert int(values["pairs"]) >= int(values["outputs"]) >= 1
    assert values["backend"].startswith("onnxruntime")
    assert values["model"] == "contract_test"
    assert values["detection_trained"] == "True" and values["segmentation_trained"] == "True"
    assert msg.status[0].hardware_id == "/camera/image_raw"


def test_threshold_change_over_the_parameter_service(camera: Camera) -> None:
    subscribe_label_info(camera.ros, "label_info")
    params = AsyncParameterClient(camera.ros.node, NODE)
    assert params.wait_for_services(timeout_sec=10.0)

    def set_(name: str, value: float) -> Any:
        future = params.set_parameters([Parameter(name, value=value)])
        camera.ros.wait_until(future.done, 10.0, f"set {name}")
        return future.result().results[0]

    try:
        assert set_("score_threshold", 0.7).successful
        one = fresh(camera, f"{NODE}/detections", lambda m: len(m.detections) == 1)
        assert one.detections[0].results[0].hypothesis.class_id == str(CLASSES.index("car"))
        labels = camera.ros.received[f"{NODE}/label_info"]  # ~/label_info states the new threshold
        camera.ros.wait_until(lambda: any(round(m.threshold, 3) == 0.7 for m in labels), 10.0, "0.7 stated")
        refused = set_("nms_iou_threshold", 0.0)  # in the descriptor's range, refused by the node
        assert not refused.successful and "nms_iou_threshold" in refused.reason
        assert not set_("score_threshold", math.nan).successful
        assert not set_("score_threshold", 1.5).successful
        assert not set_("slop_s", 0.5).successful  # read-only
    finally:
        assert set_("score_threshold", 0.35).successful
    fresh(camera, f"{NODE}/detections", lambda m: len(m.detections) == 2)


def test_sigint_shuts_down_cleanly_although_inherited_ignored(node: NodeProcess, ros: RosClient) -> None:
    """The node was started with SIGINT ignored (a background job); it stops within the bound."""
    node.assert_clean_stop(signal.SIGINT)
