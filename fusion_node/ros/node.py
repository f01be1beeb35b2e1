"""The ROS 2 node: IR + visible images in; fused image, detections, segmentation, diagnostics out.

The node only converts messages, holds parameters and QoS, and publishes; the ROS-free
FusionPipeline does the work. Subscription callbacks decode and pair; the newest complete pair
goes into a one-slot buffer that a worker thread (not the executor) processes, so callbacks never
wait for inference and a slow model drops pairs (counted) instead of adding latency.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from fusion_node.pipeline import (
    AgcConfig,
    ApproximateTimePairer,
    Frame,
    FusionPipeline,
    ImageError,
    Pair,
    PipelineConfig,
    PipelineError,
    Result,
    colorize,
    compressed_to_numpy,
    image_to_numpy,
    overlay,
)
from fusion_node.pipeline.pairing import Stream
from fusion_node.ros import params
from fusion_node.ros.messages import detections_msg, diagnostics_msg, image_msg
from fusion_node.ros.runtime import LatestSlot, LogThrottle, RunStats

NODE_NAME = "fusion_node"
CAMERAS: tuple[Stream, ...] = ("ir", "visible")
LOG_THROTTLE_S = 5.0


def pipeline_config(values: dict[str, Any]) -> PipelineConfig:
    """The PipelineConfig that the node's parameter values describe."""
    options: dict[str, Any] = {}
    if values["engine_cache_dir"]:
        options["engine_cache_dir"] = Path(values["engine_cache_dir"])
    return PipelineConfig(
        model_path=Path(values["model_path"]) if values["model_path"] else None,
        backend=values["backend"],
        device=values["device"],
        threads=values["threads"],
        score_threshold=values["score_threshold"],
        nms_iou_threshold=values["nms_iou_threshold"],
        homography=np.asarray(values["homography"], np.float64).reshape(3, 3)
        if values["homography"]
        else None,
        agc=AgcConfig(
            mode=values["agc_mode"],
            low_percentile=values["agc_low_percentile"],
            high_percentile=values["agc_high_percentile"],
            smoothing=values["agc_smoothing"],
        ),
        **options,
    )


class FusionNode(Node):
    """Subscribes to two cameras and publishes the pipeline's outputs under ~/.

    Raises (from the constructor):
        params.NodeConfigError: an invalid parameter value.
        PipelineError: a missing or broken model, or pipeline settings it rejects.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._values = params.declare(self)
        self._pipeline = FusionPipeline(pipeline_config(self._values))
        self._pipeline.warmup()
        info = self._pipeline.info
        self._n_seg_classes = len(info.seg_class_names)
        untrained = [
            name
            for name, trained in (
                ("detection", info.detection_trained),
                ("segmentation", info.segmentation_trained),
            )
            if not trained
        ]
        if untrained:
            self.get_logger().warning(
                f"model heads not trained: {', '.join(untrained)}; their topics are not published"
            )
        self._stats = RunStats()
        self._throttle = LogThrottle(max(LOG_THROTTLE_S, self._values["input_timeout_s"]))
        self._slot: LatestSlot[Pair] = LatestSlot()
        self._pairer = ApproximateTimePairer(int(self._values["slop_s"] * 1e9), self._values["queue_depth"])
        self._time_jumps_seen = 0
        self._last_seen = dict.fromkeys(CAMERAS, time.monotonic())
        self._topics: dict[str, str] = {}
        self._create_publishers(info.detection_trained, info.segmentation_trained)
        self._create_subscriptions()
        self.add_on_set_parameters_callback(self._check_parameters)
        # rclpy >= Iron applies changes after they are accepted; Humble's rclpy has no post-set
        # hook, so there the validating callback applies them too (see _check_parameters).
        self._post_set = getattr(self, "add_post_set_parameters_callback", None)
        if self._post_set is not None:
            self._post_set(self._apply_parameters)
        self.create_timer(self._values["diagnostics_period_s"], self._publish_diagnostics)
        self.create_timer(self._values["input_timeout_s"] / 2.0, self._check_inputs)
        self._worker = threading.Thread(target=self._work, name="fusion_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: {self._topics['ir']} + {self._topics['visible']} -> ~/ "
            f"(model {info.model_name}, backend {self._pipeline.backend_name})"
        )

    def _create_publishers(self, detection_trained: bool, segmentation_trained: bool) -> None:
        v = self._values
        self._pub_fused = self.create_publisher(Image, "~/fused", 5) if v["publish_fused"] else None
        self._pub_detections = (
            self.create_publisher(Detection2DArray, "~/detections", 10)
            if v["publish_detections"] and detection_trained
            else None
        )
        seg = v["publish_segmentation"] and segmentation_trained
        self._pub_seg = self.create_publisher(Image, "~/segmentation", 5) if seg else None
        self._pub_seg_color = self.create_publisher(Image, "~/segmentation/color", 5) if seg else None
        self._pub_debug = (
            self.create_publisher(Image, "~/debug_image", 5) if v["publish_debug_image"] else None
        )
        self._pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def _create_subscriptions(self) -> None:
        depth = self._values["queue_depth"]
        if self._values["reliability"] == "reliable":
            qos = QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE)
        else:
            qos = QoSProfile(
                depth=depth,
                reliability=qos_profile_sensor_data.reliability,
                durability=qos_profile_sensor_data.durability,
            )
        for camera in CAMERAS:
            topic = self._values[f"{camera}_topic"]
            if self._values[f"{camera}_transport"] == "compressed":
                topic = f"{topic.rstrip('/')}/compressed"
                self.create_subscription(
                    CompressedImage, topic, self._callback(camera, compressed_to_numpy), qos
                )
            else:
                self.create_subscription(Image, topic, self._callback(camera, image_to_numpy), qos)
            self._topics[camera] = self.resolve_topic_name(topic)

    def _callback(self, camera: Stream, decode: Callable[[Any], np.ndarray]) -> Callable[[Any], None]:
        """A subscription callback for `camera` that decodes with `decode` and pairs."""

        def on_image(msg: Image | CompressedImage) -> None:
            self._last_seen[camera] = time.monotonic()
            try:
                image = decode(msg)
            except ImageError as err:
                self._stats.count("bad_input")
                kind = getattr(msg, "encoding", None) or getattr(msg, "format", "")
                self._warn(f"{camera}:{kind}", f"{self._topics[camera]}: {err}")
                return
            stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
            pair = self._pairer.push(
                camera, Frame(image=image, stamp_ns=stamp_ns, frame_id=msg.header.frame_id)
            )
            jumps = self._pairer.stats.time_jumps
            if jumps != self._time_jumps_seen:
                self._time_jumps_seen = jumps
                self._warn(
                    f"{camera}:jump",
                    f"{self._topics[camera]}: stamp went backwards (bag loop or clock reset); "
                    "pairing restarted",
                )
            if pair is not None and self._slot.put(pair):
                self._stats.count("dropped")

        return on_image

    def _work(self) -> None:
        """Worker thread: process the newest pair, publish, repeat until the slot closes."""
        while (pair := self._slot.take()) is not None:
            try:
                result = self._pipeline.process(pair.ir.image, pair.visible.image)
            except PipelineError as err:
                self._stats.count("failed")
                self._warn(
                    type(err).__name__, f"pair at visible stamp {pair.visible.stamp_ns} ns skipped: {err}"
                )
                continue
            self._publish_result(pair.visible, result)

    def _publish_result(self, visible: Frame, result: Result) -> None:
        header = Header(stamp=Time(nanoseconds=visible.stamp_ns).to_msg(), frame_id=visible.frame_id)
        if self._pub_fused is not None:
            self._pub_fused.publish(image_msg(result.fused, "bgr8", header))
        if self._pub_detections is not None:
            self._pub_detections.publish(detections_msg(result.detections, header))
        seg = result.segmentation if self._pub_seg is not None else None
        if seg is not None and self._pub_seg is not None and self._pub_seg_color is not None:
            self._pub_seg.publish(image_msg(seg, "mono8", header))
            self._pub_seg_color.publish(image_msg(colorize(seg, self._n_seg_classes), "bgr8", header))
        if self._pub_debug is not None:
            detections = result.detections if self._pub_detections is not None else []
            debug = overlay(result.fused, seg, detections, n_classes=self._n_seg_classes)
            self._pub_debug.publish(image_msg(debug, "bgr8", header))
        latency_ns = self.get_clock().now().nanoseconds - visible.stamp_ns
        self._stats.output(latency_ns / 1e6, time.monotonic())

    def _silent_cameras(self) -> list[str]:
        now = time.monotonic()
        timeout = self._values["input_timeout_s"]
        return [self._topics[c] for c in CAMERAS if now - self._last_seen[c] > timeout]

    def _check_inputs(self) -> None:
        silent = self._silent_cameras()
        if silent:
            self._warn(
                "silent",
                f"no frames on {', '.join(silent)} for {self._values['input_timeout_s']} s; check the topic "
                f"names (ros2 topic list) and that the publisher's QoS matches reliability="
                f"{self._values['reliability']} (ros2 topic info -v)",
            )

    def _warn(self, key: str, text: str) -> None:
        if self._throttle.ready(key, time.monotonic()):
            self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        pairing = self._pairer.stats
        info = self._pipeline.info
        values: dict[str, object] = {
            **self._stats.summary(),
            "pairs": pairing.pairs,
            "unpaired": pairing.unpaired_ir + pairing.unpaired_visible + pairing.dropped_queue,
            "time_jumps": pairing.time_jumps,
            "backend": self._pipeline.backend_name,
            "model": info.model_name,
            "detection_trained": info.detection_trained,
            "segmentation_trained": info.segmentation_trained,
            "score_threshold": float(self.get_parameter("score_threshold").value),
            "nms_iou_threshold": float(self.get_parameter("nms_iou_threshold").value),
        }
        silent = self._silent_cameras()
        level, message = (
            (DiagnosticStatus.WARN, f"no input on {', '.join(silent)}")
            if silent
            else (DiagnosticStatus.OK, "running")
        )
        header = Header(stamp=self.get_clock().now().to_msg())
        self._pub_diagnostics.publish(
            diagnostics_msg(
                header, f"{self.get_name()}: fusion", self._topics["visible"], level, message, values
            )
        )

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        reason = params.check_runtime_change(parameters)
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        if self._post_set is None:
            self._apply_parameters(parameters)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        changed = {p.name: float(p.value) for p in parameters if p.name in params.RUNTIME_PARAMETERS}
        if changed:
            self._pipeline.set_thresholds(
                score=changed.get("score_threshold"), nms_iou=changed.get("nms_iou_threshold")
            )
            self.get_logger().info(f"thresholds changed: {changed}")

    def destroy_node(self) -> None:
        """Stop the worker (it finishes the pair in hand), then destroy the node."""
        self._slot.close()
        self._worker.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or shutdown; 1 when it cannot start (one error line, no traceback)."""
    # No rclpy signal handler: Ctrl-C raises KeyboardInterrupt here, while the context still
    # exists, so destroy_node() can stop the worker before anything it publishes on goes away.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node: FusionNode | None = None
    try:
        node = FusionNode()
        rclpy.spin(node)
    except (params.NodeConfigError, PipelineError) as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {err}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
