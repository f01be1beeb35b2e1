"""ROS-free run-time helpers of the node: the newest-pair slot and the run statistics."""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item buffer between the executor and the worker: a new item replaces the waiting one.

    Inference is slower than the cameras at times; processing the newest pair keeps latency
    bounded, and the replaced pairs are counted as drops instead of piling up.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: T) -> bool:
        """Store `item`; True when it replaced one the worker had not taken yet (a drop)."""
        with self._cond:
            dropped = self._item is not None
            self._item = item
            self._cond.notify()
        return dropped

    def take(self) -> T | None:
        """Wait for the next item; None once the slot is closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed)
            item, self._item = self._item, None
            return None if self._closed else item

    def close(self) -> None:
        """Wake the worker and make every later `take` return None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class LogThrottle:
    """Lets a message through at most once per `period_s` for each key.

    rclpy throttles per call site, so one problem (a bad encoding on one topic) would hide
    another that is logged by the same line (NaN pixels, or the other camera); keys keep them apart.
    """

    def __init__(self, period_s: float) -> None:
        self._period_s = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def ready(self, key: str, now_s: float) -> bool:
        """True when `key` was not let through within the period before `now_s` (monotonic)."""
        with self._lock:
            if now_s - self._last.get(key, -math.inf) < self._period_s:
                return False
            self._last[key] = now_s
            return True


class RunStats:
    """Counters and a sliding window of end-to-end latencies, shared by worker and timers."""

    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self._latencies_ms: deque[float] = deque(maxlen=window)
        self._output_times_s: deque[float] = deque(maxlen=window)
        self._counts: Counter[str] = Counter()

    def count(self, key: str, n: int = 1) -> None:
        """Add `n` to counter `key` (e.g. "pairs", "dropped", "bad_input")."""
        with self._lock:
            self._counts[key] += n

    def output(self, latency_ms: float, now_s: float) -> None:
        """Record one published result: its latency and when it went out (monotonic seconds)."""
        with self._lock:
            self._latencies_ms.append(latency_ms)
            self._output_times_s.append(now_s)
            self._counts["outputs"] += 1

    def summary(self) -> dict[str, float | int]:
        """Latency p50/p95 (ms) and FPS over the window (0 before two outputs), plus every counter."""
        with self._lock:
            latencies = np.asarray(self._latencies_ms, np.float64)
            times = list(self._output_times_s)
            counts = dict(self._counts)
        p50, p95 = (float(v) for v in np.percentile(latencies, [50, 95])) if latencies.size else (0.0, 0.0)
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        fps = (len(times) - 1) / span if span > 0 else 0.0
        return {"latency_p50_ms": p50, "latency_p95_ms": p95, "fps": fps, **counts}
