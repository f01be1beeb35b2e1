"""IR -> visible registration from synthetic calibrations: points on the plane seen by both cameras."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from fusion_node.pipeline import CalibrationError, RegistrationError
from fusion_node.pipeline.calibration import (
    Calibration,
    CameraModel,
    Extrinsics,
    load_calibration,
    load_extrinsics,
)

# A 640×480 visible camera beside a 320×256 thermal one, 8 cm apart, slightly rotated.
VISIBLE_K = [500.0, 0.0, 322.0, 0.0, 505.0, 236.0, 0.0, 0.0, 1.0]
IR_K = [260.0, 0.0, 158.0, 0.0, 262.0, 130.0, 0.0, 0.0, 1.0]
TRANSLATION = (0.08, 0.01, 0.005)
QUATERNION = (0.01, -0.02, 0.005, 1.0)  # x, y, z, w (about 2.3°, normalized by Extrinsics.of)


def camera(k: list[float], width: int, height: int, d: tuple[float, ...] = ()) -> CameraModel:
    return CameraModel.of(width=width, height=height, k=k, d=d, distortion_model="plumb_bob", name="test")


def calibration(ir_d: tuple[float, ...] = (), visible_d: tuple[float, ...] = ()) -> Calibration:
    return Calibration(
        camera(IR_K, 320, 256, ir_d),
        camera(VISIBLE_K, 640, 480, visible_d),
        Extrinsics.of(TRANSLATION, QUATERNION),
    )


def plane_points(cal: Calibration, depth_m: float) -> np.ndarray:
    """3D points (IR frame) on the plane Z_ir = depth_m that the IR camera sees across its image."""
    u, v = np.meshgrid(np.linspace(10, 310, 9), np.linspace(10, 246, 7))
    rays = np.linalg.inv(cal.ir.k) @ np.vstack([u.ravel(), v.ravel(), np.ones(u.size)])
    return (rays * depth_m).T


def project(model: CameraModel, points: np.ndarray, ext: Extrinsics | None = None) -> np.ndarray:
    """Pixels of IR-frame `points` in `model` (moved into its frame by `ext`), distortion included."""
    rvec = cv2.Rodrigues(ext.rotation)[0] if ext else np.zeros(3)
    tvec = ext.translation if ext else np.zeros(3)
    return cv2.projectPoints(points, rvec, tvec, model.k, model.d)[0].reshape(-1, 2)


def apply(homography: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pixels[None].astype(np.float64), homography)[0]


@pytest.mark.parametrize("depth_m", [2.0, 10.0, 40.0])
def test_plane_homography_maps_ir_pixels_to_visible_pixels(depth_m: float) -> None:
    cal = calibration()
    points = plane_points(cal, depth_m)
    mapped = apply(cal.homography(depth_m), project(cal.ir, points))
    error = np.linalg.norm(mapped - project(cal.visible, points, cal.extrinsics), axis=1)
    assert error.max() < 0.5


def test_infinite_plane_is_the_rotation_homography_and_parallax_is_f_b_over_z() -> None:
    cal = calibration()
    k_v, k_ir = np.asarray(VISIBLE_K).reshape(3, 3), np.asarray(IR_K).reshape(3, 3)
    assert np.allclose(cal.homography(0.0), k_v @ cal.extrinsics.rotation @ np.linalg.inv(k_ir))
    assert np.allclose(cal.homography(math.inf), cal.homography(0.0))
    far = plane_points(cal, 1e5)
    error = np.linalg.norm(
        apply(cal.homography(0.0), project(cal.ir, far)) - project(cal.visible, far, cal.extrinsics), axis=1
    )
    assert error.max() < 0.5
    # A point at d/2 is off by f·b/d under the plane-at-d homography: what parallax_px reports.
    pure = Calibration(cal.ir, cal.visible, Extrinsics.of((0.1, 0.0, 0.0)))
    near = plane_points(pure, 5.0)
    shift = apply(pure.homography(10.0), project(pure.ir, near)) - project(
        pure.visible, near, pure.extrinsics
    )
    assert pure.parallax_px(10.0) == pytest.approx(500.0 * 0.1 / 10.0)
    assert np.allclose(np.abs(shift[:, 0]), pure.parallax_px(10.0), atol=1e-6)
    assert "up to 5.0 px from 5 m to infinity" in pure.describe(10.0)


def test_distorted_cameras_get_a_remap_table_exact_on_the_plane() -> None:
    cal = calibration(ir_d=(-0.25, 0.07, 0.001, -0.002, 0.0), visible_d=(0.08, -0.03, 0.0, 0.001, 0.0))
    registration = cal.registration(8.0, "calibration files")
    assert registration.maps is not None and registration.homography is None
    map_x, map_y = registration.maps
    assert map_x.shape == (480, 640) and map_x.dtype == np.float32
    points = plane_points(cal, 8.0)
    seen = project(cal.visible, points, cal.extrinsics).astype(np.float32)
    inside = (seen[:, 0] >= 0) & (seen[:, 0] < 639) & (seen[:, 1] >= 0) & (seen[:, 1] < 479)
    assert inside.sum() > 40
    xy = seen[inside][:, None]
    looked_up = np.hstack([cv2.remap(m, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR) for m in (map_x, map_y)])
    error = np.linalg.norm(looked_up - project(cal.ir, points)[inside], axis=1)
    assert error.max() < 0.5
    # The images: a small IR image comes out at the visible size.
    assert registration.warp_ir(np.full((256, 320), 200, np.uint8), (480, 640, 3)).shape == (480, 640)


def test_undistorted_calibration_is_a_homography_for_its_sizes_only() -> None:
    registration = calibration().registration(10.0, "camera_info topics")
    assert registration.maps is None and registration.homography is not None
    assert registration.source.startswith("camera_info topics: plane at 10 m")
    with pytest.raises(RegistrationError, match=r"ir image is 640×480 but its calibration is for 320×256"):
        registration.warp_ir(np.zeros((480, 640), np.uint8), (480, 640, 3))


@pytest.mark.parametrize(
    ("k", "d_model", "message"),
    [
        ([0.0] * 9, "plumb_bob", "uncalibrated camera"),
        ([0.0, 0, 160, 0, 260, 128, 0, 0, 1], "plumb_bob", "fx=0.0"),
        ([260.0, 0, 160, 0, 260, 128, 0, 0, 1, 0], "plumb_bob", "9 finite values"),
        ([260.0, 0, 160, 0, 260, 128, 0, 0, 1], "equidistant", "'equidistant' is not supported"),
    ],
)
def test_bad_calibration_is_one_clear_error(k: list[float], d_model: str, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        CameraModel.of(width=320, height=256, k=k, d=(0.1, 0, 0, 0), distortion_model=d_model, name="IR")


def test_bad_extrinsics_and_depth() -> None:
    with pytest.raises(CalibrationError, match="zero or not finite"):
        Extrinsics.of((0.1, 0, 0), (0, 0, 0, 0))
    with pytest.raises(CalibrationError, match="3 finite values"):
        Extrinsics.of((0.1, 0))
    with pytest.raises(CalibrationError, match="must be positive"):
        calibration().homography(-1.0)


def write_camera(path: Path, k: list[float], width: int, height: int) -> Path:
    """A camera_calibration_parsers YAML, as camera_calibration writes it."""
    path.write_text(
        yaml.safe_dump(
            {
                "image_width": width,
                "image_height": height,
                "camera_name": path.stem,
                "camera_matrix": {"rows": 3, "cols": 3, "data": k},
                "distortion_model": "plumb_bob",
                "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
                "rectification_matrix": {"rows": 3, "cols": 3, "data": [1, 0, 0, 0, 1, 0, 0, 0, 1]},
                "projection_matrix": {"rows": 3, "cols": 4, "data": [*k[:3], 0, *k[3:6], 0, *k[6:], 0]},
            }
        )
    )
    return path


def test_yaml_files_give_the_same_calibration(tmp_path: Path) -> None:
    extrinsics = tmp_path / "ir_to_visible.yaml"
    extrinsics.write_text(yaml.safe_dump({"translation": list(TRANSLATION), "rotation": list(QUATERNION)}))
    loaded = load_calibration(
        write_camera(tmp_path / "ir.yaml", IR_K, 320, 256),
        write_camera(tmp_path / "visible.yaml", VISIBLE_K, 640, 480),
        load_extrinsics(extrinsics),
    )
    assert (loaded.ir.width, loaded.ir.height) == (320, 256) and not loaded.ir.distorted
    assert np.allclose(loaded.homography(10.0), calibration().homography(10.0))


def test_rpy_and_quaternion_agree(tmp_path: Path) -> None:
    rpy = Extrinsics.from_mapping({"translation": [0, 0, 0], "rpy": [0.1, -0.2, 0.3]}, "test")
    half = [a / 2 for a in (0.1, -0.2, 0.3)]
    (cr, sr), (cp, sp), (cy, sy) = ((math.cos(a), math.sin(a)) for a in half)
    quaternion = (
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    )
    assert np.allclose(rpy.rotation, Extrinsics.of((0, 0, 0), quaternion).rotation)
    bad = tmp_path / "bad.yaml"
    bad.write_text("translation: [0, 0]\n")
    with pytest.raises(
        CalibrationError, match=r"bad.yaml: IR -> visible translation must be 3 finite values"
    ):
        load_extrinsics(bad)
    with pytest.raises(CalibrationError, match="not a camera calibration YAML"):
        load_calibration(bad, bad, rpy)
