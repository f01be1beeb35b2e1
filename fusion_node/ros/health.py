"""The node's health over a sliding time window, without ROS: what /diagnostics says.

The node records events with their monotonic time (frames received, rejected and decoded, pairs
formed, dropped, failed and stale, outputs with their latency, stage timings and node overhead,
time jumps, incompatible QoS, the worker's end), and
`report(now_s)` turns them into a level, a message and key/values (docs/diagnostics.md). Rates and
latencies cover the last `window_s` only, so they fall to 0 when output stops instead of freezing
at their last value; explicit times keep all of it testable without sleeping.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np

Event = Literal["pairs", "dropped", "failed", "stale", "outputs", "decoded"]
EVENTS: tuple[Event, ...] = ("pairs", "dropped", "failed", "stale", "outputs", "decoded")
# Where a published pair's time goes, in order; "<stage>_ms" keys are their p50 in the window.
STAGES = ("decode", "preprocess", "inference", "postprocess", "publish")
NEVER = -1.0  # the age of something that has not happened yet


class Level(IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class HealthConfig:
    """The windows and thresholds (node parameters of the same names).

    Attributes:
        window_s: rates, latencies and "_in_window" counts cover the last this many seconds.
        stall_timeout_s: ERROR when frames arrive but nothing was published for this long (WARN
            after half of it).
        input_timeout_s: a camera without a frame for this long is reported silent; frames
            "arrive" while any camera had one within it.
        reliability: the subscriptions' QoS reliability, named in the hint for a silent camera.
    """

    window_s: float
    stall_timeout_s: float
    input_timeout_s: float
    reliability: str


@dataclass(frozen=True)
class HealthReport:
    """One /diagnostics status: level, message (most severe problem first), key/values."""

    level: Level
    message: str
    values: dict[str, float | int | str]


@dataclass
class _Camera:
    topic: str
    received: deque[float]
    rejected: deque[float]
    total: int = 0
    total_rejected: int = 0
    last_s: float | None = None


class Health:
    """Thread-safe record of the node's events; `report` reads it at any time.

    Args:
        config: windows and thresholds.
        topics: camera name ("ir", "visible") -> its topic, as the messages name it.
        now_s: the start time (monotonic seconds); silence and rates count from here.
    """

    def __init__(self, config: HealthConfig, topics: Mapping[str, str], now_s: float) -> None:
        self.config = config
        self._start_s = now_s
        self._lock = threading.Lock()
        self._cameras = {name: _Camera(topic, deque(), deque()) for name, topic in topics.items()}
        self._events: dict[Event, deque[float]] = {event: deque() for event in EVENTS}
        self._totals: Counter[str] = Counter()
        self._latencies: deque[tuple[float, float]] = deque()  # (time, latency ms)
        self._timings: deque[tuple[float, Mapping[str, float], float]] = deque()  # (time, stages, overhead)
        self._built: tuple[str, ...] = ()
        self._last_output_s: float | None = None
        self._waiting_since: float | None = None  # first frame after the last output
        self._last_error: tuple[str, float] | None = None
        self._last_jump: tuple[str, float] | None = None  # (camera, time)
        self._worker_stopped: str | None = None
        self._incompatible: dict[str, tuple[str, str, float]] = {}  # topic -> (entity, policy, time)

    def received(self, camera: str, now_s: float) -> None:
        """A frame arrived on `camera` (decodable or not)."""
        with self._lock:
            cam = self._cameras[camera]
            idle = max((c.last_s for c in self._cameras.values() if c.last_s is not None), default=None)
            if self._waiting_since is None or idle is None or now_s - idle > self.config.input_timeout_s:
                self._waiting_since = now_s  # frames start (again): the stall clock starts here
            cam.received.append(now_s)
            cam.total += 1
            cam.last_s = now_s

    def rejected(self, camera: str, error: str, now_s: float) -> None:
        """A frame of `camera` could not be decoded (`error` says why)."""
        with self._lock:
            cam = self._cameras[camera]
            cam.rejected.append(now_s)
            cam.total_rejected += 1
            self._last_error = (f"{cam.topic}: {error}", now_s)

    def count(self, event: Event, now_s: float) -> None:
        """One pair formed, dropped (replaced before processing) or stale (from before a jump), or
        one frame decoded."""
        with self._lock:
            self._events[event].append(now_s)
            self._totals[event] += 1

    def failed(self, error: str, now_s: float) -> None:
        """Processing or publishing a pair raised; `error` says what."""
        self.count("failed", now_s)
        with self._lock:
            self._last_error = (error, now_s)

    def published(
        self,
        latency_ms: float,
        now_s: float,
        *,
        stages_ms: Mapping[str, float] | None = None,
        overhead_ms: float = 0.0,
        built: tuple[str, ...] = (),
    ) -> None:
        """One result went out, `latency_ms` after its stamp.

        Args:
            stages_ms: milliseconds per stage of STAGES spent on it (missing ones count as 0).
            overhead_ms: the node's own work on it besides inference.
            built: the outputs built and published for it (those with subscribers).
        """
        self.count("outputs", now_s)
        with self._lock:
            self._latencies.append((now_s, latency_ms))
            self._timings.append((now_s, stages_ms or {}, overhead_ms))
            self._built = built
            self._last_output_s = now_s
            self._waiting_since = None

    def time_jump(self, camera: str, now_s: float) -> None:
        """A stamp of `camera` went backwards: latencies restart (older ones are of another clock)."""
        with self._lock:
            self._totals["time_jumps"] += 1
            self._last_jump = (camera, now_s)
            self._latencies.clear()

    def incompatible_qos(self, topic: str, entity: str, policy: str, now_s: float) -> str:
        """A peer of our `entity` ("publisher"/"subscription") on `topic` has QoS incompatible in
        `policy`; what it means and what to do.

        Reported until a frame arrives on it after this (a camera topic), else for window_s.
        """
        with self._lock:
            self._incompatible[topic] = (entity, policy, now_s)
        return self._qos_line(topic, entity, policy)

    @staticmethod
    def _qos_line(topic: str, entity: str, policy: str) -> str:
        return (
            f"incompatible QoS on {topic}: our {entity} and a peer differ in {policy}, so they never "
            f"connect; compare `ros2 topic info -v {topic}`, then change the peer or set "
            f"qos_overrides.{topic}.{entity}.reliability (or .history, .depth)"
        )

    def _qos_problems(self, now_s: float) -> dict[str, str]:
        """topic -> policy, for the incompatibilities still current."""
        cameras = {cam.topic: cam for cam in self._cameras.values()}
        current = {}
        for topic, (_, policy, at_s) in self._incompatible.items():
            cam = cameras.get(topic)
            if cam is not None:  # a frame since: the peer or our override changed
                fixed = cam.last_s is not None and cam.last_s > at_s
            else:
                fixed = now_s - at_s > self.config.window_s
            if not fixed:
                current[topic] = policy
        return current

    def worker_stopped(self, reason: str) -> None:
        """The worker thread ended while the node runs: nothing will be published again."""
        with self._lock:
            self._worker_stopped = reason

    def jump_advice(self, camera: str) -> str:
        """What a backward stamp on `camera` means and what to do."""
        return (
            f"stamps on {self._cameras[camera].topic} went backwards: pairing and AGC restarted, stale "
            "pairs dropped. A bag played with --loop restarts like this by design; otherwise a clock "
            "was reset: check use_sim_time (true only with `ros2 bag play --clock`) and the camera clocks"
        )

    def silent(self, now_s: float) -> dict[str, str]:
        """camera -> what to check, for each camera without a frame for input_timeout_s."""
        with self._lock:
            return self._silent(now_s)

    def _silent(self, now_s: float) -> dict[str, str]:
        timeout = self.config.input_timeout_s
        lines = {}
        for name, cam in self._cameras.items():
            if cam.last_s is None and now_s - self._start_s > timeout:
                lines[name] = (
                    f"no frame ever received on {cam.topic} ({now_s - self._start_s:.0f} s since start): "
                    "check the topic name (ros2 topic list) and that the publisher's QoS matches "
                    f"reliability={self.config.reliability} or its qos_overrides "
                    f"(ros2 topic info -v {cam.topic})"
                )
            elif cam.last_s is not None and now_s - cam.last_s > timeout:
                lines[name] = (
                    f"{cam.topic} stopped {now_s - cam.last_s:.1f} s ago after {cam.total} frames: "
                    f"the camera or its driver stopped; check it (ros2 topic hz {cam.topic})"
                )
        return lines

    def report(self, now_s: float) -> HealthReport:
        """Level, message and values as of `now_s`."""
        with self._lock:
            self._prune(now_s - self.config.window_s)
            values = self._values(now_s)
            problems = self._problems(now_s, values)
        level = max((lvl for lvl, _ in problems), default=Level.OK)
        if not problems:
            message = f"running: {values['fps']:.1f} outputs/s, latency p50 {values['latency_p50_ms']:.0f} ms"
        else:
            message = "; ".join(text for _, text in sorted(problems, key=lambda p: -p[0]))
            error, age = values["last_error"], float(values["last_error_age_s"])
            if error and (level == Level.ERROR or age <= self.config.window_s):
                message += f"; last error ({age:.1f} s ago): {error}"
        return HealthReport(level, message, values)

    def _prune(self, cutoff_s: float) -> None:
        queues = [*self._events.values()]
        for cam in self._cameras.values():
            queues += [cam.received, cam.rejected]
        for queue in queues:
            while queue and queue[0] < cutoff_s:
                queue.popleft()
        for timed in (self._latencies, self._timings):
            while timed and timed[0][0] < cutoff_s:
                timed.popleft()

    def _values(self, now_s: float) -> dict[str, float | int | str]:
        span = min(self.config.window_s, now_s - self._start_s)

        def rate(queue: deque[float]) -> float:
            return len(queue) / span if span > 0 else 0.0

        p50, p95 = _percentiles([ms for _, ms in self._latencies])
        overhead_p50, overhead_p95 = _percentiles([overhead for _, _, overhead in self._timings])
        values: dict[str, float | int | str] = {
            "window_s": float(self.config.window_s),
            "fps": rate(self._events["outputs"]),
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "last_output_age_s": self._age(self._last_output_s, now_s),
            "overhead_p50_ms": overhead_p50,
            "overhead_p95_ms": overhead_p95,
            "outputs_built": ",".join(self._built),
        }
        for stage in STAGES:
            values[f"{stage}_ms"] = _percentiles([times.get(stage, 0.0) for _, times, _ in self._timings])[0]
        for name, cam in self._cameras.items():
            values[f"{name}_received"] = cam.total
            values[f"{name}_rate_hz"] = rate(cam.received)
            values[f"{name}_rejected"] = cam.total_rejected
            values[f"{name}_last_frame_age_s"] = self._age(cam.last_s, now_s)
        for event in EVENTS:
            values[event] = self._totals[event]
            values[f"{event}_in_window"] = len(self._events[event])
        values["bad_input"] = sum(cam.total_rejected for cam in self._cameras.values())
        values["rejected_in_window"] = sum(len(cam.rejected) for cam in self._cameras.values())
        values["time_jumps"] = self._totals["time_jumps"]
        values["last_error"] = self._last_error[0] if self._last_error else ""
        values["last_error_age_s"] = self._age(self._last_error[1] if self._last_error else None, now_s)
        values["worker"] = "running" if self._worker_stopped is None else "stopped"
        values["qos_incompatible"] = ",".join(f"{t}:{p}" for t, p in self._qos_problems(now_s).items())
        return values

    @staticmethod
    def _age(then_s: float | None, now_s: float) -> float:
        return NEVER if then_s is None else now_s - then_s

    def _problems(self, now_s: float, values: Mapping[str, float | int | str]) -> list[tuple[Level, str]]:
        cfg = self.config
        problems: list[tuple[Level, str]] = []
        if self._worker_stopped is not None:
            stopped = f"worker stopped, nothing will be published: {self._worker_stopped}; restart the node"
            problems.append((Level.ERROR, stopped))
        newest = max((c.last_s for c in self._cameras.values() if c.last_s is not None), default=None)
        arriving = newest is not None and now_s - newest <= cfg.input_timeout_s
        stall = now_s - self._waiting_since if arriving and self._waiting_since is not None else 0.0
        if stall >= cfg.stall_timeout_s / 2:
            level = Level.ERROR if stall >= cfg.stall_timeout_s else Level.WARN
            problems.append((level, f"nothing published for {stall:.1f} s while frames arrive"))
        rejected = {name: len(cam.rejected) for name, cam in self._cameras.items() if cam.rejected}
        if rejected:
            counts = ", ".join(f"{name} {n}" for name, n in rejected.items())
            problems.append((Level.WARN, f"frames rejected in the last {cfg.window_s:g} s ({counts})"))
        if values["failed_in_window"]:
            problems.append(
                (Level.WARN, f"{values['failed_in_window']} pairs failed in the last {cfg.window_s:g} s")
            )
        if self._last_jump is not None and now_s - self._last_jump[1] <= cfg.window_s:
            problems.append((Level.WARN, self.jump_advice(self._last_jump[0])))
        problems += [(Level.WARN, line) for line in self._silent(now_s).values()]
        problems += [
            (Level.WARN, self._qos_line(topic, self._incompatible[topic][0], policy))
            for topic, policy in self._qos_problems(now_s).items()
        ]
        return problems


def _percentiles(values_ms: list[float]) -> tuple[float, float]:
    """(p50, p95) of `values_ms`, (0, 0) when empty."""
    if not values_ms:
        return 0.0, 0.0
    p50, p95 = np.percentile(np.asarray(values_ms, np.float64), [50, 95])
    return float(p50), float(p95)
