"""Image message decoding/encoding: the pure-numpy decoder on rosbags' message classes (a runtime
dependency, so these run everywhere), and rclpy's own classes where ROS 2 is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from fusion_node.pipeline import ImageError, compressed_to_numpy, image_to_numpy, numpy_to_image_fields

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
HEADER = TYPESTORE.types["std_msgs/msg/Header"](
    stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="ir"
)
RNG = np.random.default_rng(7)


@pytest.fixture
def rclpy_msg() -> Any:
    """rclpy's sensor_msgs.msg: only the tests of rclpy's own message classes need ROS 2."""
    return pytest.importorskip(
        "sensor_msgs.msg", reason="rclpy sensor_msgs not importable (. scripts/env.sh)"
    )


def image(**fields: Any) -> Any:
    """A rosbags sensor_msgs/Image (data: a uint8 array there)."""
    return TYPESTORE.types["sensor_msgs/msg/Image"](header=HEADER, **fields)


def compressed(fmt: str, data: bytes) -> Any:
    return TYPESTORE.types["sensor_msgs/msg/CompressedImage"](
        header=HEADER, format=fmt, data=np.frombuffer(data, np.uint8)
    )


def pack(pixels: np.ndarray, encoding: str, *, pad: int = 0, bigendian: bool = False) -> Any:
    """An Image holding `pixels` (H×W or H×W×C) with `pad` bytes after every row."""
    dtype = pixels.dtype.newbyteorder(">" if bigendian else "<")
    rows = np.ascontiguousarray(pixels, dtype).reshape(pixels.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return image(
        height=pixels.shape[0],
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=padded.shape[1],
        data=padded.ravel(),
    )


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize(
    ("encoding", "dtype", "channels"),
    [
        ("mono8", np.uint8, 1),
        ("8UC1", np.uint8, 1),
        ("mono16", np.uint16, 1),
        ("16UC1", np.uint16, 1),
        ("bgr8", np.uint8, 3),
        ("32FC1", np.float32, 1),
    ],
)
def test_plain_encodings_with_row_padding(encoding: str, dtype: type, channels: int, bigendian: bool) -> None:
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    pixels: np.ndarray = (RNG.random(shape) * 60000).astype(dtype)
    decoded = image_to_numpy(pack(pixels, encoding, pad=3, bigendian=bigendian))
    assert decoded.shape == shape
    assert decoded.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(decoded, pixels)


@pytest.mark.parametrize(
    ("encoding", "channels", "to_bgr"),
    [
        ("rgb8", 3, lambda p: p[..., ::-1]),
        ("bgra8", 4, lambda p: p[..., :3]),
        ("rgba8", 4, lambda p: p[..., 2::-1]),
    ],
)
def test_colour_orders_become_bgr(encoding: str, channels: int, to_bgr: object) -> None:
    pixels = RNG.integers(0, 256, (4, 6, channels), dtype=np.uint8)
    decoded = image_to_numpy(pack(pixels, encoding, pad=2))
    np.testing.assert_array_equal(decoded, to_bgr(pixels))  # type: ignore[operator]


def test_rosbags_message_decodes_zero_copy() -> None:
    pixels = RNG.integers(0, 65535, (6, 8), dtype=np.uint16)
    message = pack(pixels, "mono16", pad=4)
    decoded = image_to_numpy(message)
    np.testing.assert_array_equal(decoded, pixels)
    assert np.shares_memory(decoded, message.data)


def test_rclpy_message_decodes(rclpy_msg: Any) -> None:
    pixels = RNG.integers(0, 65535, (6, 8), dtype=np.uint16)
    rows = np.concatenate([pixels.view(np.uint8).reshape(6, -1), np.zeros((6, 4), np.uint8)], axis=1)
    message = rclpy_msg.Image(
        height=6, width=8, encoding="mono16", is_bigendian=0, step=20, data=rows.tobytes()
    )
    np.testing.assert_array_equal(image_to_numpy(message), pixels)


def test_nan_pixels_are_reported() -> None:
    pixels = np.ones((3, 4), np.float32)
    pixels[0, 0], pixels[2, 1] = np.nan, np.inf
    with pytest.raises(ImageError, match=r"2 NaN/Inf pixels of 12.*nan_to_num"):
        image_to_numpy(pack(pixels, "32FC1"))


def test_unknown_encoding_lists_supported() -> None:
    with pytest.raises(ImageError, match=r"'yuv422'.*mono8.*16UC1.*32FC1"):
        image_to_numpy(
            image(height=1, width=1, encoding="yuv422", is_bigendian=0, step=2, data=np.zeros(2, np.uint8))
        )


def test_short_data_and_bad_step_are_errors() -> None:
    short = pack(np.zeros((4, 4), np.uint8), "mono8")
    short.height = 5
    with pytest.raises(ImageError, match=r"16 bytes, expected height·step = 5·4 = 20"):
        image_to_numpy(short)
    narrow = pack(np.zeros((4, 4), np.uint16), "mono16")
    narrow.step = 6
    with pytest.raises(ImageError, match="smaller than one row"):
        image_to_numpy(narrow)


def test_compressed_png16_and_jpeg(data_dir: Path) -> None:
    thermal = (RNG.random((24, 32)) * 65535).astype(np.uint16)
    png = compressed("mono16; png compressed", cv2.imencode(".png", thermal)[1].tobytes())
    np.testing.assert_array_equal(compressed_to_numpy(png), thermal)

    visible = cv2.imread(str(data_dir / "msrs_samples" / "vi" / "00016N.png"), cv2.IMREAD_COLOR)
    assert visible is not None, "unreadable sample image"
    jpeg = compressed("jpeg", cv2.imencode(".jpg", visible, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    decoded = compressed_to_numpy(jpeg)
    assert decoded.shape == visible.shape
    assert np.abs(decoded.astype(int) - visible).mean() < 3  # lossy, but the same picture


def test_compressed_garbage_is_an_error() -> None:
    with pytest.raises(ImageError, match="cannot decode"):
        compressed_to_numpy(compressed("jpeg", b"not a jpeg"))
    with pytest.raises(ImageError, match=r"cannot decode .* 0 bytes"):  # OpenCV itself raises cv2.error
        compressed_to_numpy(compressed("jpeg", b""))


@pytest.mark.parametrize("encoding", ["mono8", "bgr8", "32FC1"])
@pytest.mark.parametrize(("height", "width"), [(0, 0), (0, 4), (3, 0)])
def test_empty_images_are_rejected(encoding: str, height: int, width: int) -> None:
    empty = image(height=height, width=width, encoding=encoding, is_bigendian=0, step=width * 4,
                  data=np.zeros(0, np.uint8))
    expected = rf"{encoding} image is empty \(shape \({height}, {width}\)\).*sent no pixels"
    with pytest.raises(ImageError, match=expected):
        image_to_numpy(empty)


@pytest.mark.parametrize(
    ("encoding", "pixels"),
    [
        ("bgr8", RNG.integers(0, 256, (5, 9, 3), dtype=np.uint8)),
        ("mono8", RNG.integers(0, 256, (5, 9), dtype=np.uint8)),
        ("mono16", RNG.integers(0, 65536, (5, 9), dtype=np.uint16)),
    ],
)
def test_publish_round_trip(encoding: str, pixels: np.ndarray, rclpy_msg: Any) -> None:
    message = rclpy_msg.Image(**numpy_to_image_fields(pixels, encoding))
    assert message.step == pixels.shape[1] * pixels.itemsize * (3 if pixels.ndim == 3 else 1)
    np.testing.assert_array_equal(image_to_numpy(message), pixels)


def test_publish_rejects_mismatched_arrays() -> None:
    with pytest.raises(ImageError, match=r"bgr8 needs a H×W×3 uint8"):
        numpy_to_image_fields(np.zeros((4, 4), np.uint8), "bgr8")
    with pytest.raises(ImageError, match="cannot publish encoding 'rgb8'"):
        numpy_to_image_fields(np.zeros((4, 4, 3), np.uint8), "rgb8")
