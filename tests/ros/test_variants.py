"""Node variants over real DDS: compressed transport, an untrained head, a missing model, silence,
and the shipped default model's real detections."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile
from ros_harness import (
    IR_FRAME,
    NODE,
    REPO,
    VISIBLE_FRAME,
    NodeProcess,
    RosClient,
    client,
    compressed,
    domain_id,
    image,
    real_pair,
)
from sample_truth import best_match, mask_against_boxes, sample_truth
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from training.models.seg_classes import SEG_CLASSES

TOPICS = {"ir_topic": "/thermal/image_raw", "visible_topic": "/camera/image_raw"}
SAMPLE = REPO / "fusion_node" / "sample"


def pair_publisher(
    ros: RosClient, ir8: np.ndarray, visible: np.ndarray, stamps: list[int] | None = None
) -> Callable[[], None]:
    """Publishes the pair as raw images on TOPICS, one stamp per call (appended to ``stamps``)."""
    ir_pub = ros.publisher(Image, TOPICS["ir_topic"])
    visible_pub = ros.publisher(Image, TOPICS["visible_topic"])

    def publish() -> None:
        stamp = ros.node.get_clock().now().nanoseconds
        if stamps is not None:
            stamps.append(stamp)
        ir_pub.publish(image(ir8, "mono8", stamp, IR_FRAME))
        visible_pub.publish(image(visible, "bgr8", stamp, VISIBLE_FRAME))

    return publish


def start(tmp_path: Path, offset: int, model: Path, **parameters: object) -> NodeProcess:
    return NodeProcess(tmp_path, domain_id(offset), {"model_path": str(model), **TOPICS, **parameters})


def test_compressed_transport_and_silent_camera_warning(
    contract_model: Callable[..., Path], tmp_path: Path
) -> None:
    with start(
        tmp_path,
        1,
        contract_model(),
        ir_transport="compressed",
        visible_transport="compressed",
        input_timeout_s=0.5,
    ) as node:
        node.wait_for_line("ready:")
        for topic in ("/thermal/image_raw/compressed", "/camera/image_raw/compressed"):
            assert "check the topic name" in node.wait_for_line(f"no frame ever received on {topic}")
        ir8, visible = real_pair(240, 320)
        with client(domain_id(1)) as ros:
            ros.subscribe(Image, f"{NODE}/fused")
            ir_pub = ros.publisher(CompressedImage, "/thermal/image_raw/compressed")
            visible_pub = ros.publisher(CompressedImage, "/camera/image_raw/compressed")
            stamps: list[int] = []

            def publish() -> None:
                stamps.append(ros.node.get_clock().now().nanoseconds)
                ir_pub.publish(compressed(ir8.astype(np.uint16) * 257, "png", stamps[-1], IR_FRAME))
                visible_pub.publish(compressed(visible, "jpeg", stamps[-1], VISIBLE_FRAME))

            msg = ros.wait_for(f"{NODE}/fused", lambda m: True, publish=publish)
        stamp = rclpy.time.Time.from_msg(msg.header.stamp).nanoseconds
        assert stamp in stamps and msg.header.frame_id == VISIBLE_FRAME
        assert (msg.height, msg.width, msg.encoding) == (240, 320, "bgr8")
        assert node.stop()[0] == 0


def test_untrained_detection_head_publishes_no_detections(
    contract_model: Callable[..., Path], tmp_path: Path
) -> None:
    with start(tmp_path, 2, contract_model(detection_trained=False)) as node:
        assert "not trained: detection" in node.wait_for_line("not trained")
        ir8, visible = real_pair(120, 160)
        with client(domain_id(2)) as ros:
            ros.subscribe(Image, f"{NODE}/fused")
            ros.subscribe(Detection2DArray, f"{NODE}/detections")
            publish = pair_publisher(ros, ir8, visible)
            ros.wait_for(f"{NODE}/fused", lambda m: True, publish=publish)
            assert ros.node.get_publishers_info_by_topic(f"{NODE}/fused")  # discovery has happened
            assert not ros.node.get_publishers_info_by_topic(f"{NODE}/detections")
            assert not ros.received[f"{NODE}/detections"]
        assert node.stop()[0] == 0


@pytest.mark.skipif(not (REPO / "models" / "fusion_rt.onnx").is_file(), reason="no default model in models/")
def test_default_model_publishes_real_detections_and_masks(tmp_path: Path) -> None:
    """model_path empty = the shipped model: the bundled pair's pedestrian comes back as a person box,
    and as person pixels of a mono8 class-id mask at the visible image's size, with its header."""
    truth = sample_truth("00036N")
    ir8 = cv2.imread(str(SAMPLE / "ir" / "00036N.jpg"), cv2.IMREAD_GRAYSCALE)
    visible = cv2.imread(str(SAMPLE / "vi" / "00036N.jpg"), cv2.IMREAD_COLOR)
    stamps: list[int] = []
    with NodeProcess(tmp_path, domain_id(0), {"model_path": "", **TOPICS}) as node:
        assert "model fusion_rt" in node.wait_for_line("configured:", timeout=60.0)
        with client(domain_id(0)) as ros:
            ros.subscribe(Detection2DArray, f"{NODE}/detections")
            for topic in ("segmentation", "segmentation/color"):
                ros.subscribe(Image, f"{NODE}/{topic}")
            latched = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
            for topic in ("label_info", "segmentation/label_info"):  # the names of the class ids
                ros.subscribe(LabelInfo, f"{NODE}/{topic}", latched)
            publish = pair_publisher(ros, ir8, visible, stamps)
            msg = ros.wait_for(f"{NODE}/detections", lambda m: len(m.detections) > 0, 60.0, publish)
            for topic in ("segmentation", "segmentation/color", "label_info", "segmentation/label_info"):
                ros.wait_until(lambda t=topic: bool(ros.received[f"{NODE}/{t}"]), 10.0, topic)
            names = {c.class_id: c.class_name for c in ros.received[f"{NODE}/label_info"][-1].class_map}
            seg_names = {
                c.class_name: c.class_id
                for c in ros.received[f"{NODE}/segmentation/label_info"][-1].class_map
            }
            mask_msg = ros.received[f"{NODE}/segmentation"][-1]
            color_msg = ros.received[f"{NODE}/segmentation/color"][-1]
        assert msg.header.frame_id == VISIBLE_FRAME
        found = []
        for det in msg.detections:
            x, y = det.bbox.center.position.x, det.bbox.center.position.y
            box = (
                x - det.bbox.size_x / 2,
                y - det.bbox.size_y / 2,
                x + det.bbox.size_x / 2,
                y + det.bbox.size_y / 2,
            )
            found.append((names[int(det.results[0].hypothesis.class_id)], box))
        assert best_match(found, truth) >= 0.5, found
        # The masks: the visible image's size and header (frame and one of the pairs' stamps).
        height, width = visible.shape[:2]
        for image_msg, encoding in ((mask_msg, "mono8"), (color_msg, "bgr8")):
            assert (image_msg.height, image_msg.width, image_msg.encoding) == (height, width, encoding)
            assert image_msg.header.frame_id == VISIBLE_FRAME
            stamp = image_msg.header.stamp.sec * 10**9 + image_msg.header.stamp.nanosec
            assert stamp in stamps
        assert list(seg_names) == list(SEG_CLASSES)
        mask = np.frombuffer(bytes(mask_msg.data), np.uint8).reshape(height, mask_msg.step)[:, :width]
        assert set(np.unique(mask)) <= set(seg_names.values())
        on_people, on_largest = mask_against_boxes(mask, seg_names["person"], truth, "person")
        assert on_people > 0.8 and on_largest > 0.15, (on_people, on_largest)
        assert node.stop()[0] == 0


@pytest.mark.parametrize("problem", ["missing", "corrupt"])
def test_unusable_model_exits_1_with_one_error_line(problem: str, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    if problem == "corrupt":
        model.write_bytes(b"not an onnx file")
    with NodeProcess(tmp_path, domain_id(3), {"model_path": str(model), **TOPICS}) as node:
        assert node.wait(timeout=30.0) == 1
    errors = [line for line in node.lines if "cannot start" in line]
    assert len(errors) == 1 and "model.onnx" in errors[0], node.output
    assert "Traceback" not in node.output
