"""rosbag2 input and output through rosbags: IR/visible frames in, the node's output topics out.

The ROS message construction for the rosbags types lives here; the node does the same for the
rclpy types at its own edge. Readers and writers are context managers, so whatever was written
before an error is closed properly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from fusion_node import defaults
from fusion_node.pipeline import (
    Detection,
    Frame,
    Result,
    colorize,
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_image_fields,
)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
DETECTION_2D_ARRAY = "vision_msgs/msg/Detection2DArray"

DEFAULT_IR_TOPIC = f"/{defaults.IR_TOPIC}"  # the node's default topics, at the root namespace
DEFAULT_VISIBLE_TOPIC = f"/{defaults.VISIBLE_TOPIC}"

# The node's output topics (its namespace is /fusion_node).
FUSED_TOPIC = "/fusion_node/fused"
DETECTIONS_TOPIC = "/fusion_node/detections"
SEGMENTATION_TOPIC = "/fusion_node/segmentation"
SEGMENTATION_COLOR_TOPIC = "/fusion_node/segmentation/color"
DEBUG_IMAGE_TOPIC = "/fusion_node/debug_image"

# The oldest metadata version rosbags writes; Jazzy and later read it. Humble's rosbag2 (>= 0.15.3)
# plays the storage file itself (`ros2 bag play out/outputs/outputs.mcap`), or after deleting
# metadata.yaml and `ros2 bag reindex` (maintainer's advice, ros2/rosbag2#1895).
BAG_VERSION: Literal[8, 9] = 8

Role = Literal["ir", "visible"]


class BagError(Exception):
    """A rosbag2 that cannot be read or written; the message names the bag and the fix."""


@lru_cache(maxsize=1)
def make_typestore() -> Typestore:
    """The ROS 2 Humble message types (same wire format through Kilted) plus vision_msgs.

    Cached: one typestore per process, shared by readers and writers (do not register into it).
    """
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    msg_dir = files("fusion_node") / "interfaces" / "vision_msgs"
    types: dict[str, Any] = {}
    for entry in msg_dir.iterdir():
        if entry.name.endswith(".msg"):
            name = f"vision_msgs/msg/{entry.name.removesuffix('.msg')}"
            types.update(get_types_from_msg(entry.read_text(encoding="utf-8"), name))
    if DETECTION_2D_ARRAY not in types:
        raise BagError(f"vision_msgs definitions missing from {msg_dir}; reinstall fusion_node")
    typestore.register(types)
    return typestore


def _storage_files(bag: Path) -> str:
    """The bag's storage file names, for error messages."""
    found = sorted(p.name for p in bag.glob("*") if p.suffix in (".mcap", ".db3")) if bag.is_dir() else []
    return f" (files: {', '.join(found)})" if found else ""


@contextmanager
def _read_errors(bag: Path) -> Iterator[None]:
    """Turn the storage libraries' errors into a BagError that names the bag and the fix."""
    try:
        yield
    except (AnyReaderError, ReaderError, TypesysError, sqlite3.DatabaseError, OSError) as err:
        # A cut-off mcap fails with "File end magic is invalid", a cut-off sqlite3 with "database
        # disk image is malformed", a folder without metadata.yaml with FileNotFoundError.
        raise BagError(
            f"cannot read bag {bag}{_storage_files(bag)}: {err}. If the recording was cut off "
            f"(recorder killed, disk full) or lacks metadata.yaml, run `ros2 bag reindex {bag}` "
            "or record it again"
        ) from err


class FrameReader:
    """Reads IR and visible frames (Image or CompressedImage) from one rosbag2.

    Usage: `with FrameReader(bag, ir_topic=..., visible_topic=...) as reader: for role, frame in
    reader.frames(): ...` where role is "ir" or "visible" and frames come in bag-time order.
    """

    def __init__(self, bag: Path, *, ir_topic: str, visible_topic: str) -> None:
        self.bag = Path(bag)
        self.topics: dict[Role, str] = {"ir": ir_topic, "visible": visible_topic}
        self.counts: dict[Role, int] = {}
        self._reader: AnyReader | None = None

    def __enter__(self) -> FrameReader:
        if not self.bag.exists():
            raise BagError(f"bag {self.bag} does not exist; give a rosbag2 folder or its .mcap/.db3 file")
        with _read_errors(self.bag):
            reader = AnyReader([self.bag], default_typestore=make_typestore())
            reader.open()
        self._reader = reader
        try:
            self.counts = {role: self._count(reader, role, topic) for role, topic in self.topics.items()}
        except BagError:
            self.close()
            raise
        return self

    def _count(self, reader: AnyReader, role: Role, topic: str) -> int:
        """Message count of an image topic; BagError listing the bag's topics when it is absent."""
        topics = reader.topics
        if topic not in topics:
            listing = ", ".join(f"{t} ({info.msgtype})" for t, info in sorted(topics.items())) or "none"
            raise BagError(
                f"bag {self.bag} has no {role} topic {topic!r}; its topics: {listing}. "
                f"Pass the right one with --{role}-topic"
            )
        msgtype = topics[topic].msgtype
        if msgtype not in (IMAGE, COMPRESSED_IMAGE):
            raise BagError(
                f"{role} topic {topic} in {self.bag} is {msgtype}; expected {IMAGE} or {COMPRESSED_IMAGE}"
            )
        return topics[topic].msgcount

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the bag (safe to call twice)."""
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()

    def frames(self) -> Iterator[tuple[Role, Frame]]:
        """Yield ("ir" | "visible", Frame) with the header stamp in integer nanoseconds."""
        if self._reader is None:
            raise BagError("FrameReader used outside its `with` block")
        reader = self._reader
        roles = {topic: role for role, topic in self.topics.items()}
        connections = [c for c in reader.connections if c.topic in roles]
        with _read_errors(self.bag):
            for connection, _, rawdata in reader.messages(connections=connections):
                msg: Any = reader.deserialize(rawdata, connection.msgtype)
                decode = compressed_to_numpy if connection.msgtype == COMPRESSED_IMAGE else image_to_numpy
                stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                yield roles[connection.topic], Frame(decode(msg), stamp_ns, msg.header.frame_id)


def header(typestore: Typestore, stamp_ns: int, frame_id: str) -> Any:
    """A std_msgs/Header for the rosbags types."""
    time = typestore.types["builtin_interfaces/msg/Time"](
        sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
    )
    return typestore.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def image_msg(typestore: Typestore, array: np.ndarray, encoding: str, hdr: Any) -> Any:
    """A sensor_msgs/Image for the rosbags types (`data` must be a uint8 array there)."""
    fields = numpy_to_image_fields(array, encoding)
    fields["data"] = np.frombuffer(fields["data"], np.uint8)
    return typestore.types[IMAGE](header=hdr, **fields)


def compressed_msg(typestore: Typestore, data: bytes, fmt: str, hdr: Any) -> Any:
    """A sensor_msgs/CompressedImage for the rosbags types."""
    return typestore.types[COMPRESSED_IMAGE](header=hdr, format=fmt, data=np.frombuffer(data, np.uint8))


def detection_array_msg(typestore: Typestore, detections: list[Detection], hdr: Any) -> Any:
    """A vision_msgs/Detection2DArray; boxes are in the published (visible) image's pixels."""
    t = typestore.types
    identity = t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
        orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
    )
    no_pose = t["geometry_msgs/msg/PoseWithCovariance"](pose=identity, covariance=np.zeros(36))
    items = []
    for det in detections:
        x1, y1, x2, y2 = det.box
        center = t["vision_msgs/msg/Pose2D"](
            position=t["vision_msgs/msg/Point2D"](x=(x1 + x2) / 2.0, y=(y1 + y2) / 2.0), theta=0.0
        )
        hypothesis = t["vision_msgs/msg/ObjectHypothesis"](class_id=str(det.class_id), score=float(det.score))
        items.append(
            t["vision_msgs/msg/Detection2D"](
                header=hdr,
                results=[t["vision_msgs/msg/ObjectHypothesisWithPose"](hypothesis=hypothesis, pose=no_pose)],
                bbox=t["vision_msgs/msg/BoundingBox2D"](center=center, size_x=x2 - x1, size_y=y2 - y1),
                id="",
            )
        )
    return t[DETECTION_2D_ARRAY](header=hdr, detections=items)


@contextmanager
def open_writer(path: Path, *, storage: str = "mcap") -> Iterator[Writer]:
    """A rosbag2 writer ("mcap" or "sqlite3") that is closed, never aborted, when the block exits.

    Closing writes the index and metadata.yaml, so messages written before an error stay readable.
    """
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise BagError(f"unknown storage {storage!r}; use one of {', '.join(plugins)}")
    if path.exists():
        raise BagError(f"output bag {path} exists already; remove it or choose another output path")
    try:
        writer = Writer(path, version=BAG_VERSION, storage_plugin=plugins[storage])
        writer.open()
    except (WriterError, OSError) as err:
        raise BagError(f"cannot create bag {path}: {err}") from err
    try:
        yield writer
    finally:
        writer.close()


class OutputBag:
    """The node's output topics in an open writer, each message with the visible frame's header.

    Topics of heads the model was not trained for are left out, as the node leaves them out.
    """

    def __init__(self, writer: Writer, *, detections: bool, segmentation_classes: int | None) -> None:
        """`segmentation_classes`: the model's segmentation class count, None when it is untrained."""
        self.typestore = make_typestore()
        self.topics = {FUSED_TOPIC: IMAGE, DEBUG_IMAGE_TOPIC: IMAGE}
        self.segmentation_classes = segmentation_classes
        if detections:
            self.topics[DETECTIONS_TOPIC] = DETECTION_2D_ARRAY
        if segmentation_classes is not None:
            self.topics |= {SEGMENTATION_TOPIC: IMAGE, SEGMENTATION_COLOR_TOPIC: IMAGE}
        self.count = 0
        self._writer = writer
        self._connections = {
            topic: writer.add_connection(topic, msgtype, typestore=self.typestore)
            for topic, msgtype in self.topics.items()
        }

    def write(self, result: Result, visible: Frame, debug_image: np.ndarray) -> None:
        """Write one processed pair's outputs, stamped with the visible frame's header."""
        ts = self.typestore
        hdr = header(ts, visible.stamp_ns, visible.frame_id)
        msgs = {FUSED_TOPIC: image_msg(ts, result.fused, "bgr8", hdr)}
        msgs[DEBUG_IMAGE_TOPIC] = image_msg(ts, debug_image, "bgr8", hdr)
        if DETECTIONS_TOPIC in self.topics:
            msgs[DETECTIONS_TOPIC] = detection_array_msg(ts, result.detections, hdr)
        if self.segmentation_classes is not None and result.segmentation is not None:
            colour = colorize(result.segmentation, self.segmentation_classes)
            msgs[SEGMENTATION_TOPIC] = image_msg(ts, result.segmentation, "mono8", hdr)
            msgs[SEGMENTATION_COLOR_TOPIC] = image_msg(ts, colour, "bgr8", hdr)
        for topic, msg in msgs.items():
            data = ts.serialize_cdr(msg, self.topics[topic])
            self._writer.write(self._connections[topic], visible.stamp_ns, data)
        self.count += len(msgs)
