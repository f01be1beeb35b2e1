"""IR -> visible registration from the cameras' own calibration (ROS-free).

The two cameras are rigidly mounted and close (a small baseline b). A scene point X in the IR
optical frame is X_v = R X + t in the visible one. For points on a plane fronto-parallel to the IR
camera at distance d (Z_ir = d, normal n = (0, 0, 1)):

    H = K_v (R + t nᵀ / d) K_ir⁻¹        (Hartley & Zisserman's K'(R − t nᵀ/d)K⁻¹ with nᵀX + d = 0)

and d -> ∞ gives the infinite homography K_v R K_ir⁻¹. A point at depth Z lands
f_v·b·|1/Z − 1/d| visible pixels away from where H puts it: f_v·b/d for Z = d/2 and for Z = ∞
(`parallax_px`), so pick d near the distances that matter.

Distortion: the node receives image_raw, and ~/fused is published with the visible camera's own
CameraInfo, so the outputs must stay in RAW visible pixels. Only the IR image is resampled, by one
remap table computed once (for each raw visible pixel: undistort it with the visible K and D,
carry the ray through the plane homography, re-distort with the IR K and D), so neither image is
undistorted on its own and a frame costs one cv2.remap, as a warpPerspective would. Without
distortion (rectified images, image_rect topics with their D = 0) the table is exactly the
homography and `registration` returns a plain homography Registration.

Sources: camera_calibration_parsers' YAML (`load_camera`) or a CameraInfo's fields
(`CameraModel.of`), and the IR -> visible extrinsics (`Extrinsics`, from a YAML or parameters).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from fusion_node.pipeline.errors import CalibrationError
from fusion_node.pipeline.registration import Registration

# ROS distortion models that cv2.undistortPoints / projectPoints implement ("" = none).
DISTORTION_MODELS = ("", "plumb_bob", "rational_polynomial")


@dataclass(frozen=True)
class CameraModel:
    """One camera's intrinsics for its raw image: size, K (3×3) and distortion coefficients D."""

    width: int
    height: int
    k: np.ndarray
    d: np.ndarray

    @classmethod
    def of(
        cls,
        *,
        width: int,
        height: int,
        k: Sequence[float],
        d: Sequence[float],
        distortion_model: str,
        name: str,
    ) -> CameraModel:
        """Checked from CameraInfo-like fields (K row-major); `name` says which camera in errors.

        Raises:
            CalibrationError: no size, a K that is not a camera matrix, an unknown distortion model.
        """
        matrix = np.asarray(k, np.float64)
        if matrix.size != 9 or not np.isfinite(matrix).all():
            raise CalibrationError(f"{name} camera: K must be 9 finite values (row-major 3×3), got {list(k)}")
        matrix = matrix.reshape(3, 3)
        if width <= 0 or height <= 0:
            raise CalibrationError(f"{name} camera: image size {width}×{height} is empty; recalibrate")
        fx, fy = matrix[0, 0], matrix[1, 1]
        if fx <= 0 or fy <= 0 or abs(np.linalg.det(matrix)) < 1e-9:
            raise CalibrationError(
                f"{name} camera: K {matrix.tolist()} has focal lengths fx={fx}, fy={fy} or is singular; "
                "an uncalibrated camera (K all zero)? Calibrate it (camera_calibration) first"
            )
        model = distortion_model if any(d) else ""
        if model not in DISTORTION_MODELS:
            raise CalibrationError(
                f"{name} camera: distortion model {distortion_model!r} is not supported; use "
                f"{', '.join(m for m in DISTORTION_MODELS if m)}, or rectified images (D = 0)"
            )
        return cls(int(width), int(height), matrix, np.asarray(d, np.float64))

    @property
    def distorted(self) -> bool:
        return bool(np.any(self.d))


def load_camera(path: Path, name: str) -> CameraModel:
    """A camera_calibration_parsers YAML (what camera_calibration writes, camera_info_url reads).

    Raises:
        CalibrationError: unreadable file or missing keys.
    """
    data = _read_yaml(path)
    try:
        return CameraModel.of(
            width=int(data["image_width"]),
            height=int(data["image_height"]),
            k=data["camera_matrix"]["data"],
            d=(data.get("distortion_coefficients") or {}).get("data") or [],
            distortion_model=str(data.get("distortion_model", "")),
            name=f"{name} ({path})",
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CalibrationError(
            f"{path} is not a camera calibration YAML (image_width, image_height, camera_matrix.data): {err}"
        ) from err


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CalibrationError(f"cannot read calibration {path}: {err}") from err
    if not isinstance(data, dict):
        raise CalibrationError(f"{path} holds no YAML mapping; expected a calibration")
    return data


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """The rotation of a quaternion (x, y, z, w, as geometry_msgs has it; normalized here)."""
    q = np.array([x, y, z, w], np.float64)
    norm = float(np.linalg.norm(q))
    if not math.isfinite(norm) or norm < 1e-9:
        raise CalibrationError(f"rotation quaternion {q.tolist()} (x, y, z, w) is zero or not finite")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """The rotation of fixed-axis roll, pitch, yaw (radians), as tf2 and URDF use them: Rz·Ry·Rx."""
    cr, sr, cp, sp, cy, sy = (f(a) for a in (roll, pitch, yaw) for f in (math.cos, math.sin))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Extrinsics:
    """IR optical frame -> visible optical frame: X_visible = rotation · X_ir + translation (metres).

    This is the transform tf2 returns for lookup_transform(target=visible frame, source=IR frame).
    """

    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def of(cls, translation: Sequence[float], quaternion: Sequence[float] = ()) -> Extrinsics:
        """From t (x, y, z) and a quaternion (x, y, z, w; empty = no rotation).

        Raises:
            CalibrationError: not 3 translation or 4 quaternion values, or not finite.
        """
        t = np.asarray(translation, np.float64)
        if t.shape != (3,) or not np.isfinite(t).all():
            raise CalibrationError(
                f"IR -> visible translation must be 3 finite values (x, y, z m), got {list(t)}"
            )
        if len(quaternion) not in (0, 4):
            raise CalibrationError(
                f"IR -> visible rotation must be a quaternion (x, y, z, w), got {list(quaternion)}"
            )
        rotation = quaternion_matrix(*quaternion) if len(quaternion) else np.eye(3)
        return cls(rotation, t)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> Extrinsics:
        """From {translation: [x, y, z], rotation: [x, y, z, w]} or {translation, rpy: [r, p, y]};
        errors start with `source` (a file, parameters)."""
        try:
            if "rpy" not in data:
                return cls.of(data["translation"], data.get("rotation") or ())
            if "rotation" in data:
                raise CalibrationError("give rotation (a quaternion) or rpy, not both")
            return cls(rpy_matrix(*(float(a) for a in data["rpy"])), cls.of(data["translation"]).translation)
        except CalibrationError as err:
            raise CalibrationError(f"{source}: {err}") from err
        except (KeyError, TypeError, ValueError) as err:
            raise CalibrationError(
                f"{source}: expected translation: [x, y, z], rotation: [x, y, z, w] or rpy: [r, p, y]: {err}"
            ) from err


def load_extrinsics(path: Path) -> Extrinsics:
    """The IR -> visible extrinsics YAML (keys of `Extrinsics.from_mapping`)."""
    return Extrinsics.from_mapping(_read_yaml(path), str(path))


@dataclass(frozen=True)
class Calibration:
    """Both cameras and the extrinsics between them: everything a plane registration needs."""

    ir: CameraModel
    visible: CameraModel
    extrinsics: Extrinsics

    def homography(self, depth_m: float) -> np.ndarray:
        """IR -> visible pixels for a plane Z_ir = depth_m (0 or ∞: infinitely far), undistorted."""
        return self.visible.k @ self._normalized(depth_m) @ np.linalg.inv(self.ir.k)

    def _normalized(self, depth_m: float) -> np.ndarray:
        if depth_m < 0 or math.isnan(depth_m):
            raise CalibrationError(f"registration depth {depth_m} m must be positive (0 = infinitely far)")
        rotation, t = self.extrinsics.rotation, self.extrinsics.translation
        if depth_m == 0 or math.isinf(depth_m):
            return rotation
        return rotation + np.outer(t, [0.0, 0.0, 1.0]) / depth_m

    def parallax_px(self, depth_m: float) -> float:
        """f_v·b/d: how far off (visible px) points at d/2 or at infinity are; at 0 (∞): points at 1 m."""
        focal = float(self.visible.k[0, 0])
        return focal * float(np.linalg.norm(self.extrinsics.translation)) / (depth_m or 1.0)

    def describe(self, depth_m: float) -> str:
        """One line for the log and /diagnostics: the plane and its parallax error."""
        parallax = self.parallax_px(depth_m)
        if depth_m == 0 or math.isinf(depth_m):
            return f"plane at infinity, parallax {parallax:.1f} px at 1 m (f·b/Z at Z m)"
        return f"plane at {depth_m:g} m, parallax up to {parallax:.1f} px from {depth_m / 2:g} m to infinity"

    def registration(self, depth_m: float, source: str) -> Registration:
        """The Registration of the plane at depth_m (a remap table, built at first use, when a camera
        is distorted)."""
        text = f"{source}: {self.describe(depth_m)}"
        expected = {
            "ir": (self.ir.height, self.ir.width),
            "visible": (self.visible.height, self.visible.width),
        }
        if not (self.ir.distorted or self.visible.distorted):
            return Registration(self.homography(depth_m), source=text, expected_hw=expected)
        return Registration(maps=lambda: self._remap_table(depth_m), source=text, expected_hw=expected)

    def _remap_table(self, depth_m: float) -> tuple[np.ndarray, np.ndarray]:
        """For each raw visible pixel, the raw IR pixel seen there (x, y float32; -1 when none)."""
        vis, ir = self.visible, self.ir
        grid = np.mgrid[0 : vis.height, 0 : vis.width][::-1].reshape(2, -1).T.astype(np.float64)
        rays = cv2.undistortPoints(grid[:, None], vis.k, vis.d).reshape(-1, 2)  # normalized, undistorted
        back = np.linalg.inv(self._normalized(depth_m)) @ np.vstack([rays.T, np.ones(len(rays))])
        ahead = back[2] > 1e-9  # rays that meet the plane in front of the IR camera
        points = (back[:, ahead] / back[2, ahead]).T
        pixels = np.full((len(rays), 2), -1.0, np.float32)
        if len(points):
            projected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), ir.k, ir.d)
            pixels[ahead] = projected.reshape(-1, 2)
        map_x, map_y = (np.ascontiguousarray(c.reshape(vis.height, vis.width)) for c in pixels.T)
        return map_x, map_y


def load_calibration(ir_path: Path, visible_path: Path, extrinsics: Extrinsics) -> Calibration:
    """Both cameras' calibration YAMLs with the extrinsics between them."""
    return Calibration(load_camera(ir_path, "IR"), load_camera(visible_path, "visible"), extrinsics)
