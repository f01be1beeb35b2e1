"""The ROS 2 demo: the real node in a subprocess, fed the bundled sample sequence over DDS.

Every output topic is recorded into a rosbag2 (mcap) with the CDR bytes received, and the run is
summarised by the same report as `fusion-node replay`. The DDS graph stays on this machine, in its
own domain, so a demo never talks to a robot on the network.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from fusion_node.pipeline import ModelError, default_model_path, numpy_to_image_fields
from fusion_node.pipeline.pair_files import PairFolderError, find_pairs, read_pair
from fusion_node.replay.bagio import make_typestore, open_writer
from fusion_node.replay.replay import OUTPUT_BAG
from fusion_node.replay.report import ReportSample, write_report
from fusion_node.ros import dds
from fusion_node.shutdown import SHUTDOWN_BOUND_S, raise_if_stopped, stop_process

IR_TOPIC, VISIBLE_TOPIC = "/thermal/image_raw", "/camera/image_raw"
IR_FRAME, VISIBLE_FRAME = "ir_optical_frame", "visible_optical_frame"
OUTPUTS = {
    "/fusion_node/fused": ("sensor_msgs/msg/Image", Image),
    "/fusion_node/detections": ("vision_msgs/msg/Detection2DArray", Detection2DArray),
    "/fusion_node/segmentation": ("sensor_msgs/msg/Image", Image),
    "/fusion_node/segmentation/color": ("sensor_msgs/msg/Image", Image),
    "/fusion_node/debug_image": ("sensor_msgs/msg/Image", Image),
    "/diagnostics": ("diagnostic_msgs/msg/DiagnosticArray", DiagnosticArray),
}
STARTUP_TIMEOUT_S = 60.0  # model load + DDS discovery on a slow robot computer
DRAIN_TIMEOUT_S = 15.0
DIAGNOSTICS_S = 0.5
REPORT_SAMPLES = 3
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"  # package data: {ir,vi}/NAME.jpg


class DemoError(Exception):
    """The demo cannot run or produced nothing; the message names the cause and the fix."""


@dataclass
class _Recorder:
    """Raw CDR of every output message with its receive time; thread-safe."""

    messages: list[tuple[str, int, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def callback(self, topic: str, node: Node) -> Callable[[bytes], None]:
        def store(data: bytes) -> None:
            with self.lock:
                self.messages.append((topic, node.get_clock().now().nanoseconds, data))

        return store

    def of(self, topic: str) -> list[tuple[int, bytes]]:
        with self.lock:
            return [(t, data) for name, t, data in self.messages if name == topic]


def _sample_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """The bundled (IR gray, visible BGR) pairs, in name order."""
    try:
        return [read_pair(pair) for pair in find_pairs(SAMPLE_DIR, strict=True)]
    except PairFolderError as err:
        raise DemoError(f"the bundled sample is unusable ({err}); reinstall fusion_node") from err


@contextmanager
def _local_ros_env(domain_id: int) -> Iterator[dict[str, str]]:
    """This process's environment while the demo runs: localhost discovery, and the large-image DDS
    profile unless one is set (the launch file's choice: without it 921 kB frames stall on UDP)."""
    saved = dict(os.environ)
    os.environ.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOCALHOST_ONLY="1",
        **dds.profile_env(),
    )
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=Time(nanoseconds=stamp_ns).to_msg(), frame_id=frame_id)


def _wait(condition: Callable[[], bool], timeout: float, node_proc: subprocess.Popen[bytes]) -> bool:
    """Poll `condition()` until true, the timeout, or the node exiting; True when it held.

    Raises:
        Stopped: a stop signal came (also the one that ended the node: Ctrl-C reaches both).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and node_proc.poll() is None:
        raise_if_stopped()
        if condition():
            return True
        time.sleep(0.05)
    raise_if_stopped()
    return condition()


def run_demo(
    output_dir: Path, *, model_path: Path | None = None, rate_hz: float = 10.0, loops: int = 10
) -> Path:
    """Run the node on the bundled sample over DDS; write outputs, bag and report into `output_dir`.

    Returns:
        The report's path.

    Raises:
        DemoError: no trained model, no readable sample, an output bag exists already, or the node
            produced no output.
        Stopped: a stop signal (under `stop_on_signals`, with or without `interrupt`: every loop
            here checks for one at least every 0.1 s); the node is stopped first.
    """
    try:
        model = model_path if model_path is not None else default_model_path()
    except ModelError as err:
        raise DemoError(f"the demo needs a trained model and none is installed: {err}") from err
    pairs = _sample_pairs()
    bag = output_dir / OUTPUT_BAG
    if bag.exists():
        raise DemoError(f"{bag} exists already; remove it or choose another output folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    params_file = output_dir / "params.yaml"
    params = {
        "model_path": str(model),
        "ir_topic": IR_TOPIC,
        "visible_topic": VISIBLE_TOPIC,
        "reliability": "reliable",  # a demo must not lose frames to best-effort
        "queue_depth": 10,
        "diagnostics_period_s": DIAGNOSTICS_S,
    }
    params_file.write_text(yaml.safe_dump({"fusion_node": {"ros__parameters": params}}))
    domain_id = int(os.environ.get("ROS_DOMAIN_ID") or random.randint(1, 101))
    with _local_ros_env(domain_id) as env, (output_dir / "node.log").open("wb") as log:
        node_proc = subprocess.Popen(
            [sys.executable, "-m", "fusion_node.ros.node", "--ros-args", "--params-file", str(params_file)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            outcome = _exchange(node_proc, pairs, rate_hz=rate_hz, loops=loops, domain_id=domain_id)
        finally:  # also on SIGINT/SIGTERM of the demo: the node must not outlive it
            stop_process(node_proc, timeout=SHUTDOWN_BOUND_S)
    if outcome is None:
        raise DemoError(f"the node produced no output; see {output_dir / 'node.log'}")
    recorder, published, wall_time_s = outcome
    return _write_outputs(output_dir, recorder, published, wall_time_s, domain_id=domain_id, model=model)


def _exchange(
    node_proc: subprocess.Popen[bytes],
    pairs: list[tuple[np.ndarray, np.ndarray]],
    *,
    rate_hz: float,
    loops: int,
    domain_id: int,
) -> tuple[_Recorder, dict[int, tuple[np.ndarray, np.ndarray]], float] | None:
    """Publish the pairs at `rate_hz` and record the outputs; None when the node never answered."""
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    client = Node("fusion_demo_player", context=context)
    recorder = _Recorder()
    subscriptions = {
        topic: client.create_subscription(
            msg_type, topic, recorder.callback(topic, client), QoSProfile(depth=100), raw=True
        )
        for topic, (_, msg_type) in OUTPUTS.items()
    }
    ir_pub = client.create_publisher(Image, IR_TOPIC, QoSProfile(depth=10))
    visible_pub = client.create_publisher(Image, VISIBLE_TOPIC, QoSProfile(depth=10))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    published: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    try:
        # Every output matched both ways before the first pair: the node builds only the outputs
        # it sees subscribed (/diagnostics "subscribers" names them with their counts), and our
        # subscription drops what comes before it has matched the node's publisher.
        def matched() -> bool:
            inputs = ir_pub.get_subscription_count() > 0 and visible_pub.get_subscription_count() > 0
            diagnostics = recorder.of("/diagnostics")
            counts = _subscribers(diagnostics[-1][1]) if diagnostics else {}
            ours = all(subscriptions[f"/fusion_node/{name}"].get_publisher_count() for name in counts)
            return inputs and bool(counts) and all(counts.values()) and ours

        connected = _wait(matched, STARTUP_TIMEOUT_S, node_proc)
        if not connected:
            return None
        start = time.monotonic()
        for index in range(loops * len(pairs)):
            raise_if_stopped()
            ir, visible = pairs[index % len(pairs)]
            stamp_ns = client.get_clock().now().nanoseconds
            published[stamp_ns] = (ir, visible)
            ir_pub.publish(Image(header=_header(stamp_ns, IR_FRAME), **numpy_to_image_fields(ir, "mono8")))
            visible_pub.publish(
                Image(header=_header(stamp_ns, VISIBLE_FRAME), **numpy_to_image_fields(visible, "bgr8"))
            )
            time.sleep(max(0.0, start + (index + 1) / rate_hz - time.monotonic()))  # pace to rate_hz
        last = max(published)

        def drained() -> bool:
            """The last pair is fused and every output of the node has caught up with fused (a
            reliable sample lost on a loaded machine comes again only at the next heartbeat)."""
            fused = recorder.of("/fusion_node/fused")
            outputs = _subscribers(recorder.of("/diagnostics")[-1][1])
            caught_up = all(len(recorder.of(f"/fusion_node/{name}")) == len(fused) for name in outputs)
            return caught_up and any(_stamp(data) == last for _, data in fused)

        _wait(drained, DRAIN_TIMEOUT_S, node_proc)
        wall_time_s = time.monotonic() - start
        # One more /diagnostics after the last output: its counters then cover the whole run.
        done_ns = client.get_clock().now().nanoseconds
        _wait(
            lambda: any(t > done_ns for t, _ in recorder.of("/diagnostics")), DIAGNOSTICS_S + 2.0, node_proc
        )
    finally:
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=5.0)
        client.destroy_node()
        rclpy.shutdown(context=context)
    return (recorder, published, wall_time_s) if recorder.of("/fusion_node/fused") else None


def _subscribers(diagnostics: bytes) -> dict[str, int]:
    """The node's outputs with their subscriber counts, from a /diagnostics message."""
    values = {kv.key: kv.value for kv in deserialize_message(diagnostics, DiagnosticArray).status[0].values}
    entries = (entry.rsplit(":", 1) for entry in values.get("subscribers", "").split(",") if entry)
    return {name: int(count) for name, count in entries}


def _stamp(data: bytes) -> int:
    msg = deserialize_message(data, Image)
    return Time.from_msg(msg.header.stamp).nanoseconds


def _image(data: bytes) -> np.ndarray:
    msg = deserialize_message(data, Image)
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, -1)


def _write_outputs(
    output_dir: Path,
    recorder: _Recorder,
    published: dict[int, tuple[np.ndarray, np.ndarray]],
    wall_time_s: float,
    *,
    domain_id: int,
    model: Path,
) -> Path:
    """The outputs bag, a few PNGs and the report; returns the report's path."""
    typestore = make_typestore()
    bag = output_dir / OUTPUT_BAG
    with open_writer(bag) as writer:
        connections = {
            topic: writer.add_connection(topic, msgtype, typestore=typestore)
            for topic, (msgtype, _) in OUTPUTS.items()
        }
        with recorder.lock:
            messages = sorted(recorder.messages, key=lambda m: m[1])
        for topic, received_ns, data in messages:
            raise_if_stopped()
            writer.write(connections[topic], received_ns, data)
    fused = recorder.of("/fusion_node/fused")
    debug = {_stamp(data): data for _, data in recorder.of("/fusion_node/debug_image")}
    latencies_ms = [(received - _stamp(data)) / 1e6 for received, data in fused]
    samples = []
    for _, data in fused[:: max(1, len(fused) // REPORT_SAMPLES)][:REPORT_SAMPLES]:
        stamp = _stamp(data)
        ir, visible = published[stamp]
        overlay = _image(debug[stamp]) if stamp in debug else _image(data)
        samples.append(ReportSample(ir=ir, visible=visible, fused=_image(data), overlay=overlay))
        cv2.imwrite(str(output_dir / f"fused_{len(samples)}.png"), _image(data))
    diagnostics = recorder.of("/diagnostics")
    last_values: dict[str, str] = {}
    if diagnostics:
        status = deserialize_message(diagnostics[-1][1], DiagnosticArray).status
        last_values = {kv.key: kv.value for kv in status[0].values} if status else {}
    report = write_report(
        output_dir,
        title="fusion_node ROS 2 demo (real node over DDS)",
        latencies_ms=latencies_ms,
        wall_time_s=wall_time_s,
        frames_in=2 * len(published),
        frames_out=len(fused),
        dropped=int(last_values.get("dropped", 0)),
        unpaired=int(last_values.get("unpaired", 0)),
        samples=samples,
        extra={
            "bag": str(bag),
            "model": str(model),
            "backend": last_values.get("backend", "unknown"),
            "ros_domain_id": domain_id,
            "messages_recorded": len(messages),
        },
    )
    print(f"demo: {len(fused)} of {len(published)} pairs fused; bag {bag}; report {report}")
    return report
