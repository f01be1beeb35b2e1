"""The node's parameters: one table of names, defaults, descriptions and ranges.

Ranges go into the ParameterDescriptor so that rclpy itself rejects out-of-range values, at
start-up and at run time. Everything but the two thresholds is read-only: topics, QoS and the
model are fixed for the node's lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from fusion_node import defaults
from fusion_node.pipeline import AgcConfig
from fusion_node.pipeline.backends import DEVICE_FORMS
from fusion_node.pipeline.letterbox import FITS

RUNTIME_PARAMETERS = ("score_threshold", "nms_iou_threshold")


class NodeConfigError(Exception):
    """A parameter value the node cannot start with; the message names it and the fix."""


@dataclass(frozen=True)
class Spec:
    """One parameter: default (or a Parameter.Type when it has none), meaning and limits."""

    name: str
    default: Any
    description: str
    limits: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()

    def descriptor(self) -> ParameterDescriptor:
        """The descriptor rclpy enforces (type from the default, range, read-only)."""
        description = self.description
        if self.choices:
            description += f" One of: {', '.join(self.choices)}."
        descriptor = ParameterDescriptor(
            description=description, read_only=self.name not in RUNTIME_PARAMETERS
        )
        if self.limits is not None and isinstance(self.default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=self.limits[0], to_value=self.limits[1])
            ]
        elif self.limits is not None:
            low, high = (int(v) for v in self.limits)
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        return descriptor


_AGC = AgcConfig()
SPECS = (
    Spec("ir_topic", defaults.IR_TOPIC, "Infrared image topic (sensor_msgs/Image, or its /compressed)."),
    Spec(
        "visible_topic",
        defaults.VISIBLE_TOPIC,
        "Visible image topic (sensor_msgs/Image, or its /compressed).",
    ),
    Spec(
        "visible_camera_info_topic",
        "",
        "The visible camera's sensor_msgs/CameraInfo: republished as ~/fused/camera_info with the "
        "fused image's header (its geometry is the visible image's); empty = not published. With "
        "ir_camera_info_topic it also gives the registration.",
    ),
    Spec(
        "ir_camera_info_topic",
        "",
        "The IR camera's sensor_msgs/CameraInfo: with visible_camera_info_topic and the "
        "ir_to_visible_* extrinsics, the IR -> visible registration is computed from both "
        "(unless homography or the calibration files are set); empty = not used.",
    ),
    Spec("ir_transport", "raw", "How the infrared camera publishes.", choices=("raw", "compressed")),
    Spec("visible_transport", "raw", "How the visible camera publishes.", choices=("raw", "compressed")),
    Spec("model_path", "", "ONNX model (or TensorRT engine) file; empty = the package's default model."),
    Spec("backend", defaults.BACKEND, "Inference backend.", choices=("onnxruntime", "tensorrt")),
    Spec(
        "device",
        defaults.DEVICE,
        f"Inference device: {', '.join(DEVICE_FORMS)} (N: the GPU index, as nvidia-smi lists them; cuda "
        "and auto use GPU 0, auto falls back to CPU). Backend tensorrt always runs on a GPU: N, else 0.",
    ),
    Spec("threads", defaults.THREADS, "CPU inference threads; 0 = ONNX Runtime's default.", limits=(0, 256)),
    Spec("engine_cache_dir", "", "Where TensorRT engines are cached; empty = the pipeline's default."),
    Spec(
        "score_threshold",
        defaults.SCORE_THRESHOLD,
        "Minimum detection score (changeable at run time).",
        limits=(0.0, 1.0),
    ),
    Spec(
        "nms_iou_threshold",
        defaults.NMS_IOU_THRESHOLD,
        "Class-wise NMS IoU in (0, 1] (changeable at run time).",
        limits=(0.0, 1.0),
    ),
    Spec(
        "slop_s",
        defaults.SLOP_S,
        "Largest stamp difference of an IR/visible pair, seconds.",
        limits=(0.0, 10.0),
    ),
    Spec("queue_depth", 10, "Subscription depth and unpaired frames kept per camera.", limits=(1, 1000)),
    Spec(
        "reliability",
        "best_effort",
        "Subscription reliability: best_effort = SensorDataQoS; reliable for bags played with reliable QoS.",
        choices=("best_effort", "reliable"),
    ),
    Spec(
        "fit",
        defaults.FIT,
        "How a camera of another aspect ratio than the model's input goes into it: stretch (fills it, "
        "distorting shapes) or letterbox (keeps the ratio, pads); outputs are in visible pixels either way.",
        choices=FITS,
    ),
    Spec(
        "homography",
        Parameter.Type.DOUBLE_ARRAY,
        "Row-major 3x3 homography mapping IR pixels into the visible image; unset or empty = none. "
        "Overrides the calibration (files or camera_info topics).",
    ),
    Spec(
        "ir_calibration_file",
        "",
        "The IR camera's calibration YAML (camera_calibration_parsers format); with "
        "visible_calibration_file and the ir_to_visible_* extrinsics it gives the registration "
        "(before the camera_info topics); empty = not used.",
    ),
    Spec("visible_calibration_file", "", "The visible camera's calibration YAML; see ir_calibration_file."),
    Spec(
        "ir_to_visible_translation",
        Parameter.Type.DOUBLE_ARRAY,
        "Translation x, y, z (m) of the transform from the IR optical frame to the visible one "
        "(X_visible = R X_ir + t: `ros2 run tf2_ros tf2_echo <visible frame> <IR frame>`); needed by "
        "the calibration.",
    ),
    Spec(
        "ir_to_visible_rotation",
        Parameter.Type.DOUBLE_ARRAY,
        "Rotation of that transform as a quaternion x, y, z, w; unset or empty = none.",
    ),
    Spec(
        "registration_depth_m",
        10.0,
        "Distance (m) of the fronto-parallel scene plane the calibration registers exactly; points "
        "at half of it and at infinity are off by f*baseline/distance px (logged). 0 = infinitely far.",
        limits=(0.0, 1e6),
    ),
    Spec("agc_mode", _AGC.mode, "Automatic gain control of 16-bit IR.", choices=("auto", "on", "off")),
    Spec(
        "agc_low_percentile", _AGC.low_percentile, "AGC lower percentile of IR counts.", limits=(0.0, 100.0)
    ),
    Spec(
        "agc_high_percentile", _AGC.high_percentile, "AGC upper percentile of IR counts.", limits=(0.0, 100.0)
    ),
    Spec(
        "agc_smoothing", _AGC.smoothing, "AGC temporal smoothing of the range (0 = none).", limits=(0.0, 0.99)
    ),
    Spec(
        "autostart",
        True,
        "Configure and activate at start (no lifecycle manager needed); false: wait in unconfigured "
        "for the lifecycle services (ros2 lifecycle set).",
    ),
    Spec("publish_fused", True, "Publish ~/fused (bgr8)."),
    Spec("publish_detections", True, "Publish ~/detections (vision_msgs/Detection2DArray)."),
    Spec("publish_segmentation", True, "Publish ~/segmentation (mono8 ids) and ~/segmentation/color."),
    Spec("publish_debug_image", True, "Publish ~/debug_image (fused image with boxes and segmentation)."),
    Spec("diagnostics_period_s", 1.0, "Period of /diagnostics messages, seconds.", limits=(0.1, 60.0)),
    Spec("input_timeout_s", 2.0, "Warn when a camera is silent this long, seconds.", limits=(0.1, 3600.0)),
    Spec(
        "diagnostics_window_s",
        5.0,
        "Rates, latencies and per-period counts in /diagnostics cover the last this many seconds.",
        limits=(0.5, 3600.0),
    ),
    Spec(
        "stall_timeout_s",
        5.0,
        "/diagnostics goes ERROR when frames arrive but nothing was published for this long "
        "(WARN after half of it), seconds.",
        limits=(0.2, 3600.0),
    ),
)

# Arrays whose default is "unset": a params file's [] leaves them unset too (rclpy has no empty typed array).
ARRAY_PARAMETERS = tuple(spec.name for spec in SPECS if spec.default == Parameter.Type.DOUBLE_ARRAY)


def declare(node: Node) -> dict[str, Any]:
    """Declare every parameter on `node` and return the values.

    rclpy enforces types and ranges; the pipeline checks homography, calibration and AGC values.

    Raises:
        NodeConfigError: a string parameter outside its choices.
    """
    values: dict[str, Any] = {}
    for spec in SPECS:
        value = node.declare_parameter(spec.name, spec.default, spec.descriptor()).value
        if spec.choices and value not in spec.choices:
            raise NodeConfigError(
                f"parameter {spec.name}={value!r} is invalid; use one of {', '.join(spec.choices)}"
            )
        values[spec.name] = value
    for name in ARRAY_PARAMETERS:
        values[name] = list(values[name] or [])  # unset (None) and [] mean: none
    return values


def check_runtime_change(parameters: list[Parameter]) -> str | None:
    """Why a run-time change must be refused, or None when it is fine.

    rclpy has already enforced types, closed ranges (NaN fails them) and read-only; an IoU of 0
    would make NMS drop every overlapping box of a class, so the pipeline wants (0, 1].
    """
    for parameter in parameters:
        if parameter.name == "nms_iou_threshold" and parameter.value <= 0.0:
            return f"nms_iou_threshold must be above 0 (got {parameter.value}); use e.g. 0.5"
    return None
