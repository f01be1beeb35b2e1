"""Registration from the robot's calibration: precedence of the sources, and the node over real DDS
computing it from both CameraInfo topics plus the extrinsics parameters."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from ros_harness import (
    HEIGHT,
    IR_FRAME,
    NODE,
    VISIBLE_FRAME,
    WIDTH,
    Camera,
    NodeProcess,
    client,
    dict_of,
    domain_id,
    node_parameters,
    stamp_ns,
)
from sensor_msgs.msg import CameraInfo, Image

from fusion_node.pipeline import AgcConfig, CalibrationError, FusionPipeline, PipelineConfig, Registration
from fusion_node.pipeline.images import image_to_numpy
from fusion_node.pipeline.registration import PendingRegistration
from fusion_node.ros.calibration import CameraInfoRegistration, initial_registration
from fusion_node.ros.params import ARRAY_PARAMETERS, SPECS

OFFSET = 3  # DDS domain offset: test_qos uses it too, never at the same time
FUSED = f"{NODE}/fused"
IR_INFO, VISIBLE_INFO = "/thermal/camera_info", "/camera/camera_info"
# The visible camera at the harness' 320×240; a 160×128 thermal camera 5 cm to its side, turned 2°.
VISIBLE_K = [300.0, 0.0, 160.0, 0.0, 300.0, 120.0, 0.0, 0.0, 1.0]
IR_K = [150.0, 0.0, 80.0, 0.0, 152.0, 64.0, 0.0, 0.0, 1.0]
IR_HW = (128, 160)
TRANSLATION = [0.05, 0.0, 0.0]
ANGLE = math.radians(2.0)
ROTATION = [0.0, math.sin(ANGLE / 2), 0.0, math.cos(ANGLE / 2)]  # about y: x, y, z, w
DEPTH_M = 4.0


def expected_homography() -> np.ndarray:
    """K_v (R + t nᵀ/d) K_ir⁻¹ written out here, independently of the runtime's code."""
    rotation = np.array(
        [[math.cos(ANGLE), 0, math.sin(ANGLE)], [0, 1, 0], [-math.sin(ANGLE), 0, math.cos(ANGLE)]]
    )
    plane = rotation + np.outer(TRANSLATION, [0, 0, 1]) / DEPTH_M
    return np.reshape(VISIBLE_K, (3, 3)) @ plane @ np.linalg.inv(np.reshape(IR_K, (3, 3)))


def camera_info(k: list[float], hw: tuple[int, int], frame_id: str) -> CameraInfo:
    info = CameraInfo(height=hw[0], width=hw[1], distortion_model="plumb_bob", k=k, d=[0.0] * 5)
    info.header.frame_id = frame_id
    return info


def defaults(**overrides: Any) -> dict[str, Any]:
    """The node's parameter values as params.declare returns them, with `overrides`."""
    values = {spec.name: spec.default for spec in SPECS}
    return {**values, **{name: [] for name in ARRAY_PARAMETERS}, **overrides}


CALIBRATED = {
    "ir_to_visible_translation": TRANSLATION,
    "ir_to_visible_rotation": ROTATION,
    "registration_depth_m": DEPTH_M,
}


def test_homography_overrides_files_and_topics_and_says_so(tmp_path: Path) -> None:
    topics = defaults(ir_camera_info_topic=IR_INFO, visible_camera_info_topic=VISIBLE_INFO, **CALIBRATED)
    assert initial_registration(defaults()).source == "none (cameras registered)"
    pending = initial_registration(topics)
    assert isinstance(pending, PendingRegistration) and IR_INFO in pending.reason
    override = initial_registration({**topics, "homography": [2, 0, 0, 0, 2, 0, 0, 0, 1]})
    assert override.source == "homography parameter (overrides the camera_info topics)"
    assert np.allclose(override.homography, np.diag([2.0, 2.0, 1.0]))
    files = {}
    for camera, k, (height, width) in (("ir", IR_K, IR_HW), ("visible", VISIBLE_K, (HEIGHT, WIDTH))):
        path = tmp_path / f"{camera}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "image_width": width,
                    "image_height": height,
                    "camera_matrix": {"rows": 3, "cols": 3, "data": k},
                }
            )
        )
        files[f"{camera}_calibration_file"] = str(path)
    from_files = initial_registration({**topics, **files})  # files before topics
    assert from_files.source.startswith("calibration files: plane at 4 m")
    assert np.allclose(from_files.homography, expected_homography())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"ir_camera_info_topic": IR_INFO, "visible_camera_info_topic": VISIBLE_INFO},
            "ir_to_visible_translation",
        ),
        ({"ir_camera_info_topic": IR_INFO}, "visible_camera_info_topic is not"),
        ({"ir_calibration_file": "ir.yaml", **CALIBRATED}, "set both or neither"),
        (
            {
                "ir_camera_info_topic": IR_INFO,
                "visible_camera_info_topic": VISIBLE_INFO,
                "ir_to_visible_translation": [0.1],
            },
            "parameters ir_to_visible_translation, ir_to_visible_rotation: IR -> visible translation",
        ),
        (
            {"ir_calibration_file": "no.yaml", "visible_calibration_file": "no.yaml", **CALIBRATED},
            "cannot read",
        ),
    ],
)
def test_half_a_calibration_is_a_clear_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        initial_registration(defaults(**values))


def test_camera_info_registration_waits_for_both_and_rejects_an_uncalibrated_camera() -> None:
    listener = CameraInfoRegistration(defaults(**CALIBRATED))
    assert listener.update("ir", camera_info(IR_K, IR_HW, IR_FRAME)) is None  # the visible is missing
    registration = listener.update("visible", camera_info(VISIBLE_K, (HEIGHT, WIDTH), VISIBLE_FRAME))
    assert registration is not None and np.allclose(registration.homography, expected_homography())
    assert listener.update("visible", camera_info(VISIBLE_K, (HEIGHT, WIDTH), VISIBLE_FRAME)) is None  # same
    with pytest.raises(CalibrationError, match=r"ir CameraInfo.*uncalibrated camera"):
        listener.update("ir", camera_info([0.0] * 9, IR_HW, IR_FRAME))  # a driver without calibration


@pytest.fixture(scope="module")
def node(
    contract_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    parameters = node_parameters(
        contract_model(
            input_size=(HEIGHT, WIDTH), size_divisor=16
        ),  # no resize: the fused image is the registered IR
        ir_camera_info_topic=IR_INFO,
        visible_camera_info_topic=VISIBLE_INFO,
        **CALIBRATED,
    )
    with NodeProcess(tmp_path_factory.mktemp("calibration"), domain_id(OFFSET), parameters) as proc:
        proc.wait_for_line("ready:")
        yield proc


def test_node_registers_the_ir_from_both_camera_infos(
    node: NodeProcess, contract_model: Callable[..., Path]
) -> None:
    assert "waiting: waiting for CameraInfo on /thermal/camera_info" in node.wait_for_line("registration:")
    with client(domain_id(OFFSET)) as ros:
        ros.subscribe(Image, FUSED)
        ros.subscribe(DiagnosticArray, "/diagnostics")
        camera = Camera(ros)
        infos = {
            ros.publisher(CameraInfo, IR_INFO): camera_info(IR_K, IR_HW, IR_FRAME),
            ros.publisher(CameraInfo, VISIBLE_INFO): camera_info(VISIBLE_K, (HEIGHT, WIDTH), VISIBLE_FRAME),
        }
        # The scene: the visible camera's picture; the thermal camera sees it through the inverse
        # homography at its own 160×128. The visible image is black, so the fused image
        # (max of both, contract model) is the IR as the node registered it.
        scene = cv2.cvtColor(camera.visible, cv2.COLOR_BGR2GRAY)
        homography = expected_homography()
        ir16 = cv2.warpPerspective(scene, np.linalg.inv(homography), IR_HW[::-1]).astype(np.uint16) * 257
        black = np.zeros_like(camera.visible)
        sent: list[int] = []

        def publish() -> None:
            for publisher, info in infos.items():
                publisher.publish(info)
            stamp = camera.stamp()
            sent.append(stamp)
            camera.pair(ir=ir16, visible=black, stamp=stamp)

        fused_msg = ros.wait_for(FUSED, lambda m: stamp_ns(m) in sent, publish=publish)
        line = node.wait_for_line("registration: camera_info topics")
        assert "plane at 4 m, parallax up to 3.8 px" in line  # 300 px · 0.05 m / 4 m
        diagnostics = ros.wait_for("/diagnostics", lambda m: "registration" in dict_of(m.status[0]))
        assert dict_of(diagnostics.status[0])["registration"].startswith("camera_info topics: plane at 4 m")

    fused = image_to_numpy(fused_msg)[..., 0]
    reference = FusionPipeline(
        PipelineConfig(
            model_path=contract_model(input_size=(HEIGHT, WIDTH), size_divisor=16),
            agc=AgcConfig(mode="off"),
            registration=Registration(homography),
        )
    ).process(ir16, black)
    assert np.abs(fused.astype(int) - reference.fused[..., 0]).max() <= 1
    # Where the thermal camera sees the scene, the registered IR is the scene again (blurred by
    # the IR's half resolution); the IR only stretched to the visible size would not be.
    covered = cv2.erode(
        cv2.warpPerspective(np.ones(IR_HW, np.uint8), homography, (WIDTH, HEIGHT)), np.ones((5, 5))
    )
    assert covered.mean() > 0.7

    def error(image: np.ndarray) -> float:
        return float(np.abs(image.astype(float) - scene)[covered > 0].mean())

    stretched = cv2.resize((ir16 >> 8).astype(np.uint8), (WIDTH, HEIGHT))
    assert error(fused) < 8.0 and error(stretched) > 2 * error(fused)
