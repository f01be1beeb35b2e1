"""The ROS 2 node: IR + visible images in; fused image, detections, segmentation, diagnostics out.

The node only converts messages, holds parameters and QoS, and publishes; the ROS-free
FusionPipeline does the work. It is a lifecycle node: configure loads and warms the model and
creates the (lifecycle) output publishers, activate subscribes to the cameras and starts the worker,
deactivate pauses inference (no outputs, /diagnostics says "inactive"), cleanup releases the model.
With `autostart` (the default) the constructor configures and activates it, so that it runs
without a lifecycle manager. /diagnostics is published in every state.

Subscription callbacks check headers and pair the messages; the newest complete pair goes into a
one-slot buffer that a worker thread (not the executor) processes, so callbacks never wait for
inference and a slow model drops pairs (counted) instead of adding latency. Work is lazy, as in
image_proc: only the pair the worker takes is decoded, and only outputs with subscribers are built
and published. The worker survives any error of one pair; the ROS-free Health turns what happens
into /diagnostics (docs/diagnostics.md).
"""

from __future__ import annotations

import copy
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import Subscription
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from fusion_node.pipeline import (
    AgcConfig,
    ApproximateTimePairer,
    CalibrationError,
    FusionPipeline,
    ImageError,
    ModelInfo,
    Pair,
    PipelineConfig,
    PipelineError,
    Result,
    check_compressed,
    check_image,
    colorize,
    compressed_to_numpy,
    image_to_numpy,
    overlay,
)
from fusion_node.pipeline.pairing import Stream
from fusion_node.pipeline.registration import PendingRegistration
from fusion_node.ros import calibration, params, qos
from fusion_node.ros.health import Health, HealthConfig, Level
from fusion_node.ros.messages import detections_msg, diagnostics_msg, image_msg, label_info_msg
from fusion_node.ros.runtime import LatestSlot, LogThrottle, keep_freed_memory
from fusion_node.shutdown import SHUTDOWN_BOUND_S, Stopped, raise_if_stopped, stop_on_signals

NODE_NAME = "fusion_node"
CAMERAS: tuple[Stream, ...] = ("ir", "visible")
LEVELS = {
    Level.OK: DiagnosticStatus.OK,
    Level.WARN: DiagnosticStatus.WARN,
    Level.ERROR: DiagnosticStatus.ERROR,
}
LOG_THROTTLE_S = 5.0
SPIN_WAKE_S = 0.1  # how often the executor returns to Python, where signal handlers run
WORKER_JOIN_S = SHUTDOWN_BOUND_S - 0.5  # the rest of the bound: destroy the node, shut rclpy down


@dataclass(frozen=True)
class Received:
    """A camera message as it arrived, header checked; decoded only if its pair is processed."""

    msg: Image | CompressedImage
    stamp_ns: int
    frame_id: str
    arrived_s: float  # monotonic time its callback started: where the node's work on it begins


# Per camera transport: (message type, cheap header check for the callback, full decode for the worker)
TRANSPORTS: dict[str, tuple[type, Callable[[Any], None], Callable[[Any], np.ndarray]]] = {
    "raw": (Image, check_image, image_to_numpy),
    "compressed": (CompressedImage, check_compressed, compressed_to_numpy),
}


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
        fit=values["fit"],
        registration=calibration.initial_registration(values),
        agc=AgcConfig(
            mode=values["agc_mode"],
            low_percentile=values["agc_low_percentile"],
            high_percentile=values["agc_high_percentile"],
            smoothing=values["agc_smoothing"],
        ),
        **options,
    )


class FusionNode(LifecycleNode):
    """Subscribes to two cameras and publishes the pipeline's outputs under ~/ (a lifecycle node).

    Raises (from the constructor):
        params.NodeConfigError: an invalid parameter value.
        PipelineError: with `autostart`, a missing or broken model, or pipeline settings it
            rejects (without it, configure fails with that message and the node stays unconfigured).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._values = params.declare(self)
        self._throttle = LogThrottle(max(LOG_THROTTLE_S, self._values["input_timeout_s"]))
        self._topics: dict[str, str] = {}
        # camera -> (message type, topic, header check)
        self._inputs: dict[Stream, tuple[type, str, Callable[[Any], None]]] = {}
        self._decoders: dict[str, Callable[[Any], np.ndarray]] = {}
        for camera in CAMERAS:
            topic = self._values[f"{camera}_topic"]
            transport = self._values[f"{camera}_transport"]
            if transport == "compressed":
                topic = f"{topic.rstrip('/')}/compressed"
            msg_type, check, self._decoders[camera] = TRANSPORTS[transport]
            self._inputs[camera] = (msg_type, topic, check)
            self._topics[camera] = self.resolve_topic_name(topic)
        self._pipeline: FusionPipeline | None = None  # set while configured
        self._configure_error: PipelineError | None = None  # why the last configure failed
        self._n_seg_classes = 0
        self._outputs: dict[str, LifecyclePublisher] = {}
        # ~/label_info and ~/segmentation/label_info: (publisher, class names, uses score_threshold)
        self._labels: dict[str, tuple[LifecyclePublisher, tuple[str, ...], bool]] = {}
        self._images: dict[str, Image] = {}  # output -> its last message, refilled for the next
        self._camera_subscriptions: list[Subscription] = []
        self._camera_info: CameraInfo | None = None  # the newest visible calibration; read by the worker
        # Set while active; (epoch, pair, monotonic time the pair was put): the epoch counts time
        # jumps, so pairs from before the last one are stale.
        self._worker: threading.Thread | None = None
        self._drawing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusion_draw")  # see _draw
        self._slot: LatestSlot[tuple[int, Pair[Received], float]] = LatestSlot()
        self._health = self._new_health()
        diagnostics_qos = self._qos_options("/diagnostics", "publisher")
        self._pub_diagnostics = self.create_publisher(
            DiagnosticArray, "/diagnostics", qos.output_qos(10), **diagnostics_qos
        )
        self.add_on_set_parameters_callback(self._check_parameters)
        # rclpy >= Iron applies changes after they are accepted; Humble's rclpy has no post-set
        # hook, so there the validating callback applies them too (see _check_parameters).
        self._post_set = getattr(self, "add_post_set_parameters_callback", None)
        if self._post_set is not None:
            self._post_set(self._apply_parameters)
        self.create_timer(self._values["diagnostics_period_s"], self._publish_diagnostics)
        self.create_timer(self._values["input_timeout_s"] / 2.0, self._check_inputs)
        self._autostarting = self._values["autostart"]
        if self._autostarting:
            self.trigger_configure()
            if self._configure_error is not None:
                raise self._configure_error  # main() says "cannot start: ..." and exits 1
            self.trigger_activate()
        self._autostarting = False

    def _new_health(self) -> Health:
        return Health(
            HealthConfig(
                window_s=self._values["diagnostics_window_s"],
                stall_timeout_s=self._values["stall_timeout_s"],
                input_timeout_s=self._values["input_timeout_s"],
                reliability=self._values["reliability"],
            ),
            self._topics,
            time.monotonic(),
        )

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and warm the model, create the output publishers (inactive until activate)."""
        # The thresholds may have changed while unconfigured; everything else is read-only.
        current = {name: self.get_parameter(name).value for name in params.RUNTIME_PARAMETERS}
        try:
            pipeline = FusionPipeline(pipeline_config({**self._values, **current}))
            pipeline.warmup()
        except PipelineError as err:
            self._configure_error = err
            if not self._autostarting:
                self.get_logger().error(f"configure failed, still unconfigured: {err}")
            return TransitionCallbackReturn.FAILURE
        self._configure_error = None
        self._pipeline = pipeline
        info = pipeline.info
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
        self._create_publishers(info)
        self.get_logger().info(f"configured: model {info.model_name}, backend {pipeline.backend_name}")
        self.get_logger().info(f"registration: {pipeline.registration.source}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers, start the worker, subscribe to the cameras; pairing starts afresh."""
        result = super().on_activate(state)
        self._health = self._new_health()  # rates, silence and stalls count from activation
        self._pairer = ApproximateTimePairer(int(self._values["slop_s"] * 1e9), self._values["queue_depth"])
        self._epoch = 0  # written by the callbacks (one executor thread), read by the worker
        self._worker_epoch = 0
        self._stale_seen = 0
        self._slot = LatestSlot()
        self._worker = threading.Thread(
            target=self._work, args=(self._slot, self._pipeline), name="fusion_worker", daemon=True
        )
        self._worker.start()
        self._create_subscriptions()
        self._publish_labels()
        self.get_logger().info(f"ready: {self._topics['ir']} + {self._topics['visible']} -> ~/")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Pause: unsubscribe, let the worker finish its pair, disable the publishers."""
        self._pause()
        self.get_logger().info("deactivated: inference paused")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the publishers and the model."""
        result = super().on_cleanup(state)
        self._release()
        return result

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """From any state: pause and release what is held."""
        self._pause()
        self._release()
        return super().on_shutdown(state)

    def _pause(self) -> None:
        for subscription in self._camera_subscriptions:
            self.destroy_subscription(subscription)
        self._camera_subscriptions = []
        if self._worker is None:
            return
        self._slot.close()
        self._worker.join(timeout=WORKER_JOIN_S)
        busy, self._worker = self._worker.is_alive(), None
        if busy:
            self.get_logger().error(
                f"the worker is still busy after {WORKER_JOIN_S} s (a stuck inference?); going on without it"
            )

    def _release(self) -> None:
        for publisher in [*self._outputs.values(), *(pub for pub, _, _ in self._labels.values())]:
            self.destroy_lifecycle_publisher(publisher)
        self._outputs, self._labels = {}, {}
        self._images = {}
        self._pipeline = None

    def _create_publishers(self, info: ModelInfo) -> None:
        """One lifecycle publisher per enabled output (name under ~/); `_publish_result` builds only
        subscribed ones."""
        v = self._values
        seg = v["publish_segmentation"] and info.segmentation_trained
        enabled = {
            "fused": (Image, 5, v["publish_fused"]),
            "detections": (Detection2DArray, 10, v["publish_detections"] and info.detection_trained),
            "segmentation": (Image, 5, seg),
            "segmentation/color": (Image, 5, seg),
            "debug_image": (Image, 5, v["publish_debug_image"]),
            "fused/camera_info": (CameraInfo, 5, v["publish_fused"] and bool(v["visible_camera_info_topic"])),
        }
        self._outputs = {
            name: self.create_lifecycle_publisher(
                msg_type, f"~/{name}", qos.output_qos(depth), **self._qos_options(f"~/{name}", "publisher")
            )
            for name, (msg_type, depth, on) in enabled.items()
            if on
        }
        labels = {
            "label_info": ("detections", info.class_names, True),
            "segmentation/label_info": ("segmentation", info.seg_class_names, False),
        }
        self._labels = {
            name: (
                self.create_lifecycle_publisher(
                    LabelInfo, f"~/{name}", qos.latched_qos(), **self._qos_options(f"~/{name}", "publisher")
                ),
                names,
                thresholded,
            )
            for name, (output, names, thresholded) in labels.items()
            if output in self._outputs
        }

    def _publish_labels(self) -> None:
        """Class index -> name of the detections and the segmentation (kept for late subscribers)."""
        header = Header(stamp=self.get_clock().now().to_msg())
        score = float(self.get_parameter("score_threshold").value)
        for publisher, names, thresholded in self._labels.values():
            publisher.publish(label_info_msg(names, header, score if thresholded else 0.0))

    def _create_subscriptions(self) -> None:
        """The camera subscriptions; `reliability` and `queue_depth` give the QoS unless overridden."""
        profile = qos.input_qos(self._values["reliability"], self._values["queue_depth"])
        self._camera_subscriptions = [
            self.create_subscription(
                msg_type,
                topic,
                self._callback(camera, check),
                profile,
                **self._qos_options(topic, "subscription"),
            )
            for camera, (msg_type, topic, check) in self._inputs.items()
        ]
        info_topic = self._values["visible_camera_info_topic"]
        if "fused/camera_info" in self._outputs:
            self._camera_info = None

            def keep(msg: CameraInfo) -> None:
                self._camera_info = msg

            subscription = self.create_subscription(
                CameraInfo, info_topic, keep, profile, **self._qos_options(info_topic, "subscription")
            )
            self._camera_subscriptions.append(subscription)
        self._subscribe_calibration(profile)

    def _subscribe_calibration(self, profile: QoSProfile) -> None:
        """With both camera_info topics (and no homography or files): the registration from them."""
        if not calibration.uses_topics(self._values):
            return
        listener = calibration.CameraInfoRegistration(self._values)
        for camera in CAMERAS:
            topic = self._values[f"{camera}_camera_info_topic"]
            subscription = self.create_subscription(
                CameraInfo,
                topic,
                lambda msg, camera=camera: self._calibrate(listener, camera, msg),
                profile,
                **self._qos_options(topic, "subscription"),
            )
            self._camera_subscriptions.append(subscription)

    def _calibrate(self, listener: calibration.CameraInfoRegistration, camera: str, msg: CameraInfo) -> None:
        """Hand the pipeline a new registration when the calibration is complete or changed.

        Cheap here: a distorted calibration's remap table is built by the worker at its next pair.
        """
        try:
            registration = listener.update(camera, msg)
        except CalibrationError as err:  # pairs then fail with this reason, on /diagnostics too
            registration = PendingRegistration(f"no registration from the camera_info topics: {err}")
            self.get_logger().error(registration.reason)
        if registration is not None and self._pipeline is not None:
            self._pipeline.set_registration(registration)
            self.get_logger().info(f"registration: {registration.source}")

    def _qos_options(self, topic: str, entity: str) -> dict[str, Any]:
        """QoS overrides and incompatible-QoS reports (log and /diagnostics WARN) for `topic`."""
        resolved = self.resolve_topic_name(topic)

        def report(policy: str) -> None:
            line = self._health.incompatible_qos(resolved, entity, policy, time.monotonic())
            self._warn(f"qos:{resolved}", line)

        options = qos.subscription_options if entity == "subscription" else qos.publisher_options
        return options(report)

    def _callback(self, camera: Stream, check: Callable[[Any], None]) -> Callable[[Any], None]:
        """A subscription callback for `camera`: check the header with `check`, pair, hand over."""

        def on_image(msg: Image | CompressedImage) -> None:
            now = time.monotonic()
            self._health.received(camera, now)
            try:
                check(msg)
            except ImageError as err:
                self._reject(camera, msg, err, now)
                return
            stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds
            jumps = self._pairer.stats.time_jumps
            pair = self._pairer.push(camera, Received(msg, stamp_ns, msg.header.frame_id, now))
            stats = self._pairer.stats
            if stats.time_jumps != jumps:
                self._epoch += 1  # the worker drops what is older and restarts AGC
                self._health.time_jump(camera, now)
                self._warn(f"{camera}:jump", f"{self._health.jump_advice(camera)} (stamp {stamp_ns} ns)")
            if stats.stale != self._stale_seen:
                self._stale_seen = stats.stale
                self._health.count("stale", now)
            if pair is None:
                return
            self._health.count("pairs", now)
            if self._slot.put((self._epoch, pair, time.monotonic())):
                self._health.count("dropped", now)

        return on_image

    def _reject(self, camera: str, msg: Image | CompressedImage, err: ImageError, now_s: float) -> None:
        self._health.rejected(camera, str(err), now_s)
        kind = getattr(msg, "encoding", None) or getattr(msg, "format", "")
        self._warn(f"{camera}:{kind}", f"{self._topics[camera]}: {err}")

    def _work(self, slot: LatestSlot[tuple[int, Pair[Received], float]], pipeline: FusionPipeline) -> None:
        """Worker thread: process the newest pair, publish, repeat until `slot` closes."""
        try:
            while (item := slot.take()) is not None:
                self._process(pipeline, *item)
        except BaseException as err:  # only a bug gets here; say so on /diagnostics, then end
            reason = f"{type(err).__name__}: {err}"
            self._health.worker_stopped(reason)
            self.get_logger().fatal(
                f"worker stopped, nothing will be published: {reason}\n{traceback.format_exc()}"
            )

    def _process(self, pipeline: FusionPipeline, epoch: int, pair: Pair[Received], queued_s: float) -> None:
        """Decode, fuse and publish one pair; any error skips that pair only (counted, logged per cause)."""
        taken_s = time.monotonic()
        stamp = pair.visible.stamp_ns
        if epoch != self._epoch:  # formed before a time jump
            self._health.count("stale", taken_s)
            return
        if epoch != self._worker_epoch:  # the first pair after a jump: AGC must not carry over
            self._worker_epoch = epoch
            pipeline.reset()
        try:
            images = self._decode(pair)
            if images is None:
                return
            decoded_s = time.monotonic()
            result = pipeline.process(*images)
            if epoch != self._epoch:  # a jump while processing
                self._health.count("stale", time.monotonic())
                return
            publishing_s = time.monotonic()
            built = self._publish_result(pair.visible, result)
        except Exception as err:  # one bad pair, whatever went wrong, must not stop all output
            cause = f"{type(err).__name__}: {err}"
            self._health.failed(f"pair at visible stamp {stamp} ns: {cause}", time.monotonic())
            if self._throttle.ready(cause, time.monotonic()):
                if isinstance(err, PipelineError):
                    self.get_logger().warning(f"pair at visible stamp {stamp} ns skipped: {cause}")
                else:  # not an input problem but a bug: the traceback helps to fix it
                    self.get_logger().error(
                        f"pair at visible stamp {stamp} ns skipped: {cause}\n{traceback.format_exc()}"
                    )
            return
        done_s = time.monotonic()
        latency_ns = self.get_clock().now().nanoseconds - stamp
        timings = result.timings_ms
        stages = {
            "decode": (decoded_s - taken_s) * 1e3,
            **{stage: timings[stage] for stage in ("preprocess", "inference", "postprocess")},
            "publish": (done_s - publishing_s) * 1e3,
        }
        # Node work on this pair besides inference: the callback that completed it (arrival to
        # hand-over) and the worker from taking it to the last publish; not its wait in the slot.
        callback_s = queued_s - max(pair.ir.arrived_s, pair.visible.arrived_s)
        overhead_ms = (callback_s + done_s - taken_s) * 1e3 - timings["inference"]
        self._health.published(
            latency_ns / 1e6, done_s, stages_ms=stages, overhead_ms=overhead_ms, built=built
        )

    def _decode(self, pair: Pair[Received]) -> tuple[np.ndarray, np.ndarray] | None:
        """The pair's two images; None when one cannot be decoded (rejected as on arrival)."""
        images = []
        for camera, frame in (("ir", pair.ir), ("visible", pair.visible)):
            self._health.count("decoded", time.monotonic())
            try:
                images.append(self._decoders[camera](frame.msg))
            except ImageError as err:
                self._reject(camera, frame.msg, err, time.monotonic())
                return None
        return images[0], images[1]

    def _publish_result(self, visible: Received, result: Result) -> tuple[str, ...]:
        """Build and publish the outputs that have subscribers (as image_proc does); their names."""
        wanted = {name: pub for name, pub in self._outputs.items() if pub.get_subscription_count()}
        header = Header(stamp=Time(nanoseconds=visible.stamp_ns).to_msg(), frame_id=visible.frame_id)
        seg = result.segmentation if "segmentation" in self._outputs else None  # None: no seg topics
        drawn = None
        if "debug_image" in wanted or (seg is not None and "segmentation/color" in wanted):
            drawn = self._drawing.submit(self._draw, result, seg, "debug_image" in wanted)
        if "fused" in wanted:
            wanted["fused"].publish(self._image("fused", result.fused, "bgr8", header))
        if "fused/camera_info" in wanted:
            self._publish_camera_info(wanted["fused/camera_info"], result.fused.shape, header)
        if "detections" in wanted:
            wanted["detections"].publish(detections_msg(result.detections, header))
        if seg is not None and "segmentation" in wanted:
            wanted["segmentation"].publish(self._image("segmentation", seg, "mono8", header))
        if drawn is not None:
            colour, debug = drawn.result()
            if colour is not None and "segmentation/color" in wanted:
                colour_msg = self._image("segmentation/color", colour, "bgr8", header)
                wanted["segmentation/color"].publish(colour_msg)
            if debug is not None:
                wanted["debug_image"].publish(self._image("debug_image", debug, "bgr8", header))
        return tuple(wanted)

    def _draw(
        self, result: Result, seg: np.ndarray | None, debug: bool
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The colour mask (when there is a segmentation) and, if `debug`, the overlay.

        Runs in the drawing thread while the worker publishes the other outputs: OpenCV releases
        the GIL, rclpy's publish does not, so the two overlap.
        """
        colour = colorize(seg, self._n_seg_classes) if seg is not None else None  # once for both
        if not debug:
            return colour, None
        detections = result.detections if "detections" in self._outputs else []
        return colour, overlay(result.fused, seg, detections, n_classes=self._n_seg_classes, coloured=colour)

    def _publish_camera_info(
        self, publisher: LifecyclePublisher, shape: tuple[int, ...], header: Header
    ) -> None:
        """The visible calibration with the fused image's header: ~/fused is in visible geometry."""
        info = self._camera_info
        if info is None:
            return
        if (info.height, info.width) != shape[:2]:
            topic = self._values["visible_camera_info_topic"]
            self._warn(
                "camera_info:size",
                f"{topic} is for {info.width}x{info.height} but the visible image is {shape[1]}x{shape[0]}: "
                "~/fused/camera_info not published; give the visible camera's own camera_info topic",
            )
            return
        out = copy.copy(info)  # the stored message may be read again for the next pair
        out.header = header
        publisher.publish(out)

    def _image(self, output: str, image: np.ndarray, encoding: str, header: Header) -> Image:
        """The Image message of `output`, refilled: one per output, reused (worker thread only)."""
        msg = image_msg(image, encoding, header, reuse=self._images.get(output))
        self._images[output] = msg
        return msg

    def _check_inputs(self) -> None:
        if self._worker is None:  # not active: not subscribed, so silence is expected
            return
        for camera, line in self._health.silent(time.monotonic()).items():
            self._warn(f"{camera}:silent", line)

    def _warn(self, key: str, text: str) -> None:
        if self._throttle.ready(key, time.monotonic()):
            self.get_logger().warning(text)

    def _lifecycle_status(self) -> tuple[Level, str, dict[str, object]]:
        """Level, message and values while not active: why nothing is published, and what to do."""
        if self._pipeline is not None:
            return Level.OK, "inactive: inference paused; activate to resume", {"state": "inactive"}
        if self._configure_error is not None:
            message = f"unconfigured: configure failed: {self._configure_error}; fix it and configure again"
            return Level.ERROR, message, {"state": "unconfigured"}
        return Level.OK, "unconfigured: configure and activate to start", {"state": "unconfigured"}

    def _publish_diagnostics(self) -> None:
        values: dict[str, object]
        if self._worker is None:
            level, message, values = self._lifecycle_status()
        else:
            report = self._health.report(time.monotonic())
            pairing = self._pairer.stats
            level, message = report.level, report.message
            outputs = self._outputs.items()
            values = {
                "state": "active",
                **report.values,
                "unpaired": pairing.unpaired_ir + pairing.unpaired_visible + pairing.dropped_queue,
                "subscribers": ",".join(f"{o}:{p.get_subscription_count()}" for o, p in outputs),
            }
        if self._pipeline is not None:
            info = self._pipeline.info
            values |= {
                "backend": self._pipeline.backend_name,
                "model": info.model_name,
                "detection_trained": info.detection_trained,
                "segmentation_trained": info.segmentation_trained,
                "registration": self._pipeline.registration.source,
            }
        values |= {name: float(self.get_parameter(name).value) for name in params.RUNTIME_PARAMETERS}
        header = Header(stamp=self.get_clock().now().to_msg())
        self._pub_diagnostics.publish(
            diagnostics_msg(
                header, f"{self.get_name()}: fusion", self._topics["visible"], LEVELS[level], message, values
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
        if changed and self._pipeline is not None:  # else configure reads them
            self._pipeline.set_thresholds(
                score=changed.get("score_threshold"), nms_iou=changed.get("nms_iou_threshold")
            )
            self.get_logger().info(f"thresholds changed: {changed}")
            if self._worker is not None:  # active: ~/label_info states the threshold in use
                self._publish_labels()

    def destroy_node(self) -> None:
        """Stop the worker (it finishes the pair in hand, within WORKER_JOIN_S), then destroy the node."""
        self._pause()
        self._drawing.shutdown()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT, SIGTERM or shutdown; 1 when it cannot start (one error line).

    Stops within shutdown.SHUTDOWN_BOUND_S of the signal: the executor wakes every SPIN_WAKE_S to
    let the signal handler run, then the worker is joined and the publishers are destroyed.
    """
    # Our handlers, not rclpy's: rclpy's would shut the context down while the worker may still
    # publish. Not interrupting: raised inside the executor's message take, Stopped became a
    # pybind11 RuntimeError; the loop below raises it at its next wake-up instead (SPIN_WAKE_S).
    # `rclpy.init` is not a context manager on Humble, hence try/finally.
    keep_freed_memory()  # before rclpy allocates: frames no longer page-fault in anew
    with stop_on_signals(interrupt=False):
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        logger = rclpy.logging.get_logger(NODE_NAME)
        node: FusionNode | None = None
        reason = "shutdown"
        try:
            node = FusionNode()
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            while rclpy.ok():
                raise_if_stopped()
                executor.spin_once(timeout_sec=SPIN_WAKE_S)
        except (params.NodeConfigError, PipelineError) as err:
            logger.fatal(f"cannot start: {err}")
            return 1
        except Stopped as stop:
            reason = stop.name
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            start = time.monotonic()
            if node is not None:
                node.destroy_node()
                logger.info(f"shut down on {reason} in {time.monotonic() - start:.2f} s")
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
