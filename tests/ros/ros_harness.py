"""Real-DDS test harness: the node in a subprocess, a test client node in this process.

Every wait is bounded; nothing sleeps in place of a check.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from fusion_node.pipeline import numpy_to_image_fields
from fusion_node.shutdown import SHUTDOWN_BOUND_S

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = REPO / ".." / "shared" / "data"
NODE = "/fusion_node"
IR_FRAME, VISIBLE_FRAME = "ir_optical_frame", "visible_optical_frame"


def domain_id(offset: int) -> int:
    """A DDS domain for one test module: distinct per module (offset) and per concurrent run (pid)."""
    if not 0 <= offset < 4:
        raise ValueError(f"offset {offset} outside 0..3")
    return 101 + (os.getpid() % 28) * 4 + offset


def ros_env(domain: int) -> dict[str, str]:
    """Environment of an isolated, local-only ROS graph."""
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOCALHOST_ONLY="1",
        PYTHONUNBUFFERED="1",
        RCUTILS_COLORIZED_OUTPUT="0",
    )
    return env


def real_pair(height: int = 240, width: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """A registered RoadScene pair from the shared data: IR as 8-bit H×W, visible as BGR H×W×3."""
    ir_dir = DATA_DIR / "roadscene" / "ir"
    names = sorted(ir_dir.glob("*.jpg")) if ir_dir.is_dir() else []
    if not names:
        import pytest

        pytest.skip(f"shared data not found at {ir_dir.resolve()}")
    ir = cv2.imread(str(names[0]), cv2.IMREAD_GRAYSCALE)
    visible = cv2.imread(str(DATA_DIR / "roadscene" / "vi" / names[0].name), cv2.IMREAD_COLOR)
    return (
        cv2.resize(ir, (width, height), interpolation=cv2.INTER_AREA),
        cv2.resize(visible, (width, height), interpolation=cv2.INTER_AREA),
    )


def node_parameters(model: Path, **overrides: Any) -> dict[str, Any]:
    """The test node's parameters: `model`, the cameras' topics, AGC off (16-bit IR maps back by
    >> 8), reliable QoS, /diagnostics every 0.2 s; `overrides` add or replace."""
    return {
        "model_path": str(model),
        "ir_topic": "/thermal/image_raw",
        "visible_topic": "/camera/image_raw",
        "agc_mode": "off",
        "reliability": "reliable",
        "diagnostics_period_s": 0.2,
        **overrides,
    }


def process_environ(matches: Callable[[list[str]], bool]) -> dict[str, str]:
    """The environment of the running process whose argv `matches` (found in /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = [arg.decode() for arg in (proc / "cmdline").read_bytes().split(b"\0")]
            if matches(argv):
                pairs = (proc / "environ").read_bytes().split(b"\0")
                return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
        except OSError:  # a process that ended meanwhile, or one not ours to read
            continue
    raise AssertionError("no running process matches")


def ignore_sigint() -> None:
    """preexec_fn: start with SIGINT ignored, as a background job (`cmd &`, nohup) would."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Process:
    """A command whose output (stdout and stderr) is collected line by line.

    `group`: the command leads its own process group, as a terminal's foreground job does: `stop`
    signals the whole group (Ctrl-C reaches a launch and its nodes alike) and `kill` kills it.
    Use it as a context manager, or call `kill()` in a `finally`, so that nothing outlives a failed test.
    """

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        cwd: Path = REPO,
        preexec_fn: Callable[[], None] | None = None,
        group: bool = False,
    ) -> None:
        self.lines: list[str] = []
        self._group = group
        self._proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            preexec_fn=preexec_fn,
            start_new_session=group,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def _read(self) -> None:
        for line in self._proc.stdout or ():
            self.lines.append(line.rstrip())

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 20.0) -> str:
        """The first output line containing `text`; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = next((line for line in list(self.lines) if text in line), None)
            if match is not None:
                return match
            if self._proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout} s; node output:\n{self.output}")

    def wait(self, timeout: float = 20.0) -> int:
        """Exit code once the process ends by itself."""
        code = self._proc.wait(timeout=timeout)
        self._reader.join(timeout=5.0)
        return code

    def stop(self, signum: int = signal.SIGINT, timeout: float = SHUTDOWN_BOUND_S) -> tuple[int, float]:
        """Send `signum`; (exit code, seconds until the process was gone). Fails after `timeout`."""
        start = time.monotonic()
        if self._group:
            os.killpg(self._proc.pid, signum)
        elif self._proc.poll() is None:
            self._proc.send_signal(signum)
        try:
            code = self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit {timeout} s after {signum!r}; output:\n{self.output}") from None
        return code, time.monotonic() - start

    def kill(self) -> None:
        """SIGKILL the process (its group) if it still runs (cleanup, not a shutdown test)."""
        if self._group:
            with contextlib.suppress(ProcessLookupError):  # no process left in the group
                os.killpg(self._proc.pid, signal.SIGKILL)
        elif self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()


class NodeProcess(Process):
    """`python -m fusion_node.ros.node` with a params file.

    Started with SIGINT ignored (the hard case: the node must install its own handler).
    """

    def __init__(self, tmp: Path, domain: int, parameters: dict[str, Any]) -> None:
        params_file = tmp / "params.yaml"
        params_file.write_text(yaml.safe_dump({"fusion_node": {"ros__parameters": parameters}}))
        super().__init__(
            [sys.executable, "-m", "fusion_node.ros.node", "--ros-args", "--params-file", str(params_file)],
            ros_env(domain),
            preexec_fn=ignore_sigint,
        )

    def assert_clean_stop(self, signum: int) -> None:
        """`signum` stops the node within the bound: exit 0, its shutdown line, no traceback."""
        code, seconds = self.stop(signum)
        assert code == 0, self.output
        assert f"shut down on {signal.Signals(signum).name}" in self.wait_for_line("shut down on")
        assert seconds <= SHUTDOWN_BOUND_S
        assert "Traceback" not in self.output, self.output


class RosClient:
    """A test node with its own context and domain: publishes camera frames, records outputs."""

    def __init__(self, domain: int) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = Node("fusion_test_client", context=self.context)
        self.received: dict[str, list[Any]] = defaultdict(list)
        self._cond = threading.Condition()
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def subscribe(self, msg_type: type, topic: str, qos: QoSProfile | None = None) -> None:
        def store(msg: Any) -> None:
            with self._cond:
                self.received[topic].append(msg)
                self._cond.notify_all()

        self.node.create_subscription(msg_type, topic, store, qos or QoSProfile(depth=50))

    def publisher(self, msg_type: type, topic: str) -> Any:
        return self.node.create_publisher(msg_type, topic, QoSProfile(depth=10))

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(check, timeout=timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_for(
        self,
        topic: str,
        check: Callable[[Any], bool],
        timeout: float = 20.0,
        publish: Callable[[], Any] | None = None,
    ) -> Any:
        """The first message on `topic` (received from now on) passing `check`.

        `publish` is called every 0.25 s meanwhile: it covers discovery and best-effort losses.
        """
        start = len(self.received[topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if publish is not None:
                publish()
            with self._cond:
                self._cond.wait(timeout=0.25)
                match = next((m for m in self.received[topic][start:] if check(m)), None)
            if match is not None:
                return match
        raise AssertionError(f"no matching message on {topic} within {timeout} s")

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=1.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@contextmanager
def client(domain: int) -> Iterator[RosClient]:
    ros = RosClient(domain)
    try:
        yield ros
    finally:
        ros.close()


def header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=rclpy.time.Time(nanoseconds=stamp_ns).to_msg(), frame_id=frame_id)


def image(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Image:
    return Image(header=header(stamp_ns, frame_id), **numpy_to_image_fields(array, encoding))


def compressed(array: np.ndarray, fmt: str, stamp_ns: int, frame_id: str) -> CompressedImage:
    ok, data = cv2.imencode(f".{fmt}", array)
    if not ok:
        raise ValueError(f"cannot encode {fmt}")
    return CompressedImage(header=header(stamp_ns, frame_id), format=fmt, data=data.tobytes())


HEIGHT, WIDTH = 240, 320
IR_DELAY_NS = 10_000_000  # IR 10 ms after visible, within the slop: outputs carry the VISIBLE stamp


def stamp_ns(msg: Any) -> int:
    return rclpy.time.Time.from_msg(msg.header.stamp).nanoseconds


def dict_of(status: Any) -> dict[str, str]:
    """A DiagnosticStatus' key/values."""
    return {kv.key: kv.value for kv in status.values}


class Camera:
    """Publishes registered IR (mono16) + visible (bgr8) pairs with fresh, distinct stamps."""

    def __init__(self, ros: RosClient) -> None:
        self.ros = ros
        self.ir_pub = ros.publisher(Image, "/thermal/image_raw")
        self.visible_pub = ros.publisher(Image, "/camera/image_raw")
        ir8, self.visible = real_pair(HEIGHT, WIDTH)
        self.ir8 = ir8
        self.ir16 = ir8.astype(np.uint16) * 257  # full 16-bit range; AGC "off" maps it back (>> 8)
        self.visible_stamps: list[int] = []
        self._tick = itertools.count(1)

    def stamp(self) -> int:
        return self.ros.node.get_clock().now().nanoseconds + next(self._tick)

    def pair(
        self,
        ir: np.ndarray | None = None,
        visible: np.ndarray | None = None,
        stamp: int | None = None,
    ) -> None:
        stamp = self.stamp() if stamp is None else stamp
        self.visible_stamps.append(stamp)
        # IR 10 ms later than visible (within slop): outputs must carry the VISIBLE stamp.
        self.ir_pub.publish(image(self.ir16 if ir is None else ir, "mono16", stamp + IR_DELAY_NS, IR_FRAME))
        visible = self.visible if visible is None else visible
        self.visible_pub.publish(image(visible, "bgr8", stamp, VISIBLE_FRAME))

    def raw_visible(self, encoding: str) -> None:
        """A visible frame the node cannot decode: `encoding` on bgr8 bytes."""
        stamp = self.stamp()
        msg = image(self.visible, "bgr8", stamp, VISIBLE_FRAME)
        msg.encoding = encoding
        self.ir_pub.publish(image(self.ir16, "mono16", stamp + IR_DELAY_NS, IR_FRAME))
        self.visible_pub.publish(msg)


def fresh(camera: Camera, topic: str, check: Callable[[Any], bool] = lambda _: True) -> Any:
    """The first output on `topic` for a pair published from now on (keeps publishing pairs)."""
    first = len(camera.visible_stamps)
    return camera.ros.wait_for(
        topic, lambda m: stamp_ns(m) in camera.visible_stamps[first:] and check(m), publish=camera.pair
    )
