"""Which IR -> visible registration the node's parameters ask for, and CameraInfo -> calibration.

Precedence: the `homography` parameter (an override) > the calibration files > the two
camera_info topics > none (cameras already registered). The extrinsics come from parameters:
tf2_ros has no PyPI wheel for the ROS-free test set-up, so no TF lookup is made; on a robot,
`ros2 run tf2_ros tf2_echo <visible frame> <IR frame>` prints the values to put there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sensor_msgs.msg import CameraInfo

from fusion_node.pipeline import CalibrationError, Registration
from fusion_node.pipeline.calibration import Calibration, CameraModel, Extrinsics, load_calibration
from fusion_node.pipeline.registration import PendingRegistration

TOPICS_SOURCE = "camera_info topics"
FILES_SOURCE = "calibration files"


def _files(values: dict[str, Any]) -> tuple[Path, Path] | None:
    """Both cameras' calibration files; None when neither is set."""
    ir, visible = values["ir_calibration_file"], values["visible_calibration_file"]
    if bool(ir) != bool(visible):
        raise CalibrationError(
            f"ir_calibration_file={ir!r} but visible_calibration_file={visible!r}; set both or neither"
        )
    return (Path(ir), Path(visible)) if ir else None


def uses_topics(values: dict[str, Any]) -> bool:
    """Whether the registration comes from the two camera_info topics (nothing above them is set)."""
    return not values["homography"] and _files(values) is None and bool(values["ir_camera_info_topic"])


def extrinsics(values: dict[str, Any]) -> Extrinsics:
    """The IR -> visible transform from the ir_to_visible_* parameters."""
    if not values["ir_to_visible_translation"]:
        raise CalibrationError(
            "the calibration needs the IR -> visible extrinsics: set ir_to_visible_translation [x, y, z] m "
            "and ir_to_visible_rotation [x, y, z, w] (tf2_echo <visible frame> <IR frame> prints them)"
        )
    transform = {
        "translation": values["ir_to_visible_translation"],
        "rotation": values["ir_to_visible_rotation"],
    }
    return Extrinsics.from_mapping(transform, "parameters ir_to_visible_translation, ir_to_visible_rotation")


def initial_registration(values: dict[str, Any]) -> Registration:
    """The registration at configure: topics give a pending one until both CameraInfo arrive.

    Raises:
        CalibrationError: half a calibration, missing extrinsics, unreadable or invalid files.
    """
    files = _files(values)
    topics = values["ir_camera_info_topic"]
    if topics and not values["visible_camera_info_topic"]:
        raise CalibrationError("ir_camera_info_topic is set but visible_camera_info_topic is not; set both")
    if values["homography"]:
        overridden = FILES_SOURCE if files else TOPICS_SOURCE if topics else ""
        note = f" (overrides the {overridden})" if overridden else ""
        return Registration(values["homography"], source=f"homography parameter{note}")
    if files is not None:
        calibration = load_calibration(*files, extrinsics(values))
        return calibration.registration(values["registration_depth_m"], FILES_SOURCE)
    if topics:
        extrinsics(values)  # missing extrinsics fail at configure, not at the first CameraInfo
        return PendingRegistration(
            f"waiting for CameraInfo on {topics} and {values['visible_camera_info_topic']}"
        )
    return Registration()


class CameraInfoRegistration:
    """Builds the registration from the newest CameraInfo of each camera, again when one changes."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._extrinsics = extrinsics(values)
        self._depth_m = float(values["registration_depth_m"])
        self._infos: dict[str, tuple[Any, ...]] = {}

    def update(self, camera: str, msg: CameraInfo) -> Registration | None:
        """A new registration when `msg` completes or changes the calibration, else None.

        Raises:
            CalibrationError: the two CameraInfo cannot give a registration (e.g. K all zero).
        """
        info = (msg.width, msg.height, tuple(msg.k), tuple(msg.d), msg.distortion_model)
        if self._infos.get(camera) == info:
            return None
        self._infos[camera] = info
        if len(self._infos) < 2:
            return None
        ir, visible = (self._model(camera) for camera in ("ir", "visible"))
        return Calibration(ir, visible, self._extrinsics).registration(self._depth_m, TOPICS_SOURCE)

    def _model(self, camera: str) -> CameraModel:
        width, height, k, d, model = self._infos[camera]
        return CameraModel.of(
            width=width, height=height, k=k, d=d, distortion_model=model, name=f"{camera} CameraInfo"
        )
