"""sensor_msgs/Image and CompressedImage fields <-> numpy, without ROS types.

This replaces cv_bridge: it has no wheel on PyPI and its compiled module conflicts with numpy 2.
Any object with the message's fields works (rclpy messages, rosbags messages, test doubles).
Decoding is zero-copy (a strided view over the message buffer) unless the data must be converted:
big-endian words are swapped and RGB/alpha layouts are reordered into BGR.
"""

from __future__ import annotations

import array
import sys
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from fusion_node.pipeline.errors import ImageError

# encoding -> (element type, channels, OpenCV conversion to BGR or None)
_ENCODINGS: dict[str, tuple[type[np.generic], int, int | None]] = {
    "mono8": (np.uint8, 1, None),
    "8UC1": (np.uint8, 1, None),
    "mono16": (np.uint16, 1, None),
    "16UC1": (np.uint16, 1, None),
    "bgr8": (np.uint8, 3, None),
    "rgb8": (np.uint8, 3, cv2.COLOR_RGB2BGR),
    "bgra8": (np.uint8, 4, cv2.COLOR_BGRA2BGR),
    "rgba8": (np.uint8, 4, cv2.COLOR_RGBA2BGR),
    "32FC1": (np.float32, 1, None),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)
_NATIVE: Literal["<", ">"] = "<" if sys.byteorder == "little" else ">"
_PUBLISH_ENCODINGS: dict[str, tuple[type[np.generic], int]] = {
    "bgr8": (np.uint8, 3),
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
}


class ImageFields(Protocol):
    """The sensor_msgs/Image fields this module reads."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int | bool
    data: Any


class CompressedImageFields(Protocol):
    """The sensor_msgs/CompressedImage fields this module reads."""

    format: str
    data: Any


def _byte_buffer(data: Any) -> np.ndarray:
    """A uint8 view of bytes / bytearray / array.array('B') / ndarray data, copying only lists."""
    try:
        return np.frombuffer(data, np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, np.uint8).ravel()


def require_pixels(shape: tuple[int, ...], what: str) -> None:
    """Raise ImageError for an image `shape` without pixels (0 height or width, or not 2-D)."""
    if len(shape) < 2 or 0 in shape[:2]:
        raise ImageError(
            f"{what} image is empty (shape {shape}); the camera or its driver sent no pixels: "
            "check it, and that the publisher fills height and width"
        )


def check_image(msg: ImageFields) -> None:
    """Raise ImageError for what an Image's header shows wrong, without touching its pixels.

    Cheap enough for a subscription callback: the node rejects these frames on arrival and
    decodes the rest (`image_to_numpy`) only when their pair is processed.

    Raises:
        ImageError: unknown encoding, 0 height or width, data shorter than height·step, or a step
            smaller than one row.
    """
    if msg.encoding not in _ENCODINGS:
        raise ImageError(
            f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}. "
            "Configure the camera driver (or an image_proc node) to publish one of these"
        )
    dtype, channels, _ = _ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    require_pixels((height, width), msg.encoding)
    item = np.dtype(dtype).itemsize
    if step < width * channels * item:
        raise ImageError(
            f"{msg.encoding} image step {step} is smaller than one row ({width} px × {channels * item} B); "
            "the publisher filled the Image header wrongly"
        )
    size = _byte_buffer(msg.data).size
    if size < height * step:
        raise ImageError(
            f"{msg.encoding} image data has {size} bytes, expected height·step = {height}·{step} = "
            f"{height * step}; the message is truncated or its header is wrong"
        )


def image_to_numpy(msg: ImageFields) -> np.ndarray:
    """Decode an Image message into H×W (mono, 16-bit, float) or H×W×3 BGR uint8.

    Raises:
        ImageError: what `check_image` finds, or NaN/Inf pixels in a 32FC1 image.
    """
    check_image(msg)
    dtype, channels, to_bgr = _ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    item = np.dtype(dtype).itemsize
    buf = _byte_buffer(msg.data)
    order: Literal["<", ">"] = ">" if msg.is_bigendian else "<"
    view = np.ndarray(
        (height, width, channels),
        dtype=np.dtype(dtype).newbyteorder(order),
        buffer=buf,
        strides=(step, channels * item, item),
    )
    if item > 1 and order != _NATIVE:
        view = view.astype(np.dtype(dtype))  # swap to native order once: every consumer needs it
    image = view[:, :, 0] if channels == 1 else view
    if to_bgr is not None:
        image = cv2.cvtColor(np.ascontiguousarray(image), to_bgr)
    if dtype is np.float32:
        bad = int(np.count_nonzero(~np.isfinite(image)))
        if bad:
            raise ImageError(
                f"32FC1 image has {bad} NaN/Inf pixels of {height * width}; replace them before "
                "publishing (e.g. np.nan_to_num) or publish 16UC1/mono16 raw counts"
            )
    return image


def check_compressed(msg: CompressedImageFields) -> None:
    """Raise ImageError for a CompressedImage that cannot be decoded, judged by format and size only.

    Raises:
        ImageError: compressedDepth data, or no data at all.
    """
    if "compressedDepth" in msg.format:
        raise ImageError(
            f"compressedDepth format {msg.format!r} is not supported; subscribe to the raw topic or "
            "republish it with image_transport's 'compressed' (png) transport"
        )
    if not len(msg.data):  # OpenCV raises on 0 bytes
        raise _undecodable(msg)


def _undecodable(msg: CompressedImageFields) -> ImageError:
    return ImageError(
        f"cannot decode compressed image (format {msg.format!r}, {len(msg.data)} bytes); "
        "only jpeg and png data are supported"
    )


def compressed_to_numpy(msg: CompressedImageFields) -> np.ndarray:
    """Decode a CompressedImage (jpeg/png) into H×W (8 or 16-bit) or H×W×3 BGR.

    Raises:
        ImageError: what `check_compressed` finds, or bytes OpenCV cannot decode.
    """
    check_compressed(msg)
    data = _byte_buffer(msg.data)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise _undecodable(msg)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def numpy_to_image_fields(
    image: np.ndarray, encoding: str, *, reuse: array.array | None = None
) -> dict[str, Any]:
    """Fields for a sensor_msgs/Image holding `image` (bgr8: H×W×3 uint8, mono8/mono16: H×W).

    `data` is an array.array('B') holding one copy of the pixels: rclpy stores it without a
    per-byte check, and rosbags takes `np.frombuffer(fields["data"], np.uint8)` without a copy.
    Multi-byte data is little-endian. `reuse`: an array.array('B') of a message already sent,
    returned as `data` refilled in place when its size fits (no allocation per image).

    Raises:
        ImageError: unsupported encoding, or an array whose dtype/shape does not match it.
    """
    if encoding not in _PUBLISH_ENCODINGS:
        raise ImageError(f"cannot publish encoding {encoding!r}; use one of {', '.join(_PUBLISH_ENCODINGS)}")
    dtype, channels = _PUBLISH_ENCODINGS[encoding]
    shape_ok = image.ndim == 2 if channels == 1 else image.ndim == 3 and image.shape[2] == channels
    if image.dtype != dtype or not shape_ok:
        expected = "H×W" if channels == 1 else f"H×W×{channels}"
        raise ImageError(
            f"{encoding} needs a {expected} {np.dtype(dtype).name} array, got {image.shape} {image.dtype}; "
            "convert it first (e.g. cv2.cvtColor, astype)"
        )
    contiguous = np.ascontiguousarray(image, dtype=np.dtype(dtype).newbyteorder("<"))
    pixels = contiguous.reshape(-1).view(np.uint8)
    if reuse is not None and len(reuse) == pixels.size:
        np.frombuffer(reuse, np.uint8)[:] = pixels
        data = reuse
    else:
        data = array.array("B")
        data.frombytes(pixels.data)
    return {
        "height": image.shape[0],
        "width": image.shape[1],
        "encoding": encoding,
        "is_bigendian": 0,
        "step": image.shape[1] * channels * contiguous.itemsize,
        "data": data,
    }
