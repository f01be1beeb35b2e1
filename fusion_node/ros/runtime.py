"""ROS-free run-time helpers of the node: the newest-pair slot, the keyed log throttle, and keeping
freed memory in the process."""

from __future__ import annotations

import ctypes
import math
import threading
from typing import Generic, TypeVar

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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS; False where the C
    library is not glibc (nothing changed then).

    Every camera frame rclpy takes and every message it publishes goes through fresh buffers of an
    image's size; glibc maps each such buffer anew and unmaps it when freed, so its pages fault in
    again on every frame: 1.2 of the 2.0 ms of CPU that taking one 640×480 bgr8 frame costs
    (docs/benchmarks.md), with the GIL held. The ROS 2 real-time guidance sets the same two options
    (no mmap for allocations, no trimming); the process then keeps its peak heap.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
