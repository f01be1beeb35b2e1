"""Approximate-time pairing of the infrared and visible streams.

This replaces message_filters' ApproximateTimeSynchronizer (no wheel outside a ROS distribution)
with a policy made for a robot: the NEWEST pair within the slop wins and everything older is
dropped and counted, so latency never builds up behind a slow consumer and memory stays bounded.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal, cast

from fusion_node.pipeline.errors import PipelineError
from fusion_node.pipeline.types import F, Pair, Stamped

Stream = Literal["ir", "visible"]


@dataclass(frozen=True)
class PairingStats:
    """Counters since construction; every pushed frame ends in exactly one (or is still queued).

    `pairs` and `stale` count pairs (two frames each); a stale pair is one with a frame whose stamp
    went backwards, and is not returned.
    """

    pairs: int = 0
    unpaired_ir: int = 0
    unpaired_visible: int = 0
    dropped_queue: int = 0
    time_jumps: int = 0
    stale: int = 0


class ApproximateTimePairer:
    """Pairs frames whose stamps differ by at most `slop_ns`; thread-safe.

    Only stamps are read, so frames may be decoded `Frame`s or still-encoded messages; feed one
    kind per pairer.

    Args:
        slop_ns: the largest stamp difference of a pair, in nanoseconds.
        max_queue: frames kept per stream while waiting for a partner; older ones are dropped.
    """

    def __init__(self, slop_ns: int, max_queue: int = 8) -> None:
        if slop_ns < 0 or max_queue < 1:
            raise PipelineError(f"need slop_ns >= 0 and max_queue >= 1, got {slop_ns} and {max_queue}")
        self.slop_ns = slop_ns
        self.max_queue = max_queue
        self._queues: dict[str, deque[Stamped]] = {"ir": deque(), "visible": deque()}
        self._last_stamp: dict[str, int | None] = {"ir": None, "visible": None}
        self._stats = PairingStats()
        self._jumped: Stamped | None = None  # the frame whose stamp went backwards, while queued
        self._lock = threading.Lock()

    @property
    def stats(self) -> PairingStats:
        """A snapshot of the counters."""
        with self._lock:
            return self._stats

    def push(self, stream: Stream, frame: F) -> Pair[F] | None:
        """Add a frame; return the pair it completes, if any.

        A stamp older than the stream's previous one (bag loop, clock reset, one out-of-order
        frame) clears both queues and increments `stats.time_jumps`; callers compare it to log
        the jump. The pair that frame would form is stale, not returned: counted in `stats.stale`
        (a lone out-of-order frame must not be published; a restarted stream pairs again from its
        next frame).
        """
        if stream not in self._queues:
            raise PipelineError(f"unknown stream {stream!r}; use 'ir' or 'visible'")
        other: Stream = "visible" if stream == "ir" else "ir"
        with self._lock:
            last = self._last_stamp[stream]
            if last is not None and frame.stamp_ns < last:
                self._discard(stream, len(self._queues[stream]))
                self._discard(other, len(self._queues[other]))
                self._stats = replace(self._stats, time_jumps=self._stats.time_jumps + 1)
                self._last_stamp = {"ir": None, "visible": None}
                self._jumped = frame
            self._last_stamp[stream] = frame.stamp_ns

            candidates = self._queues[other]
            best = min(
                range(len(candidates)),
                key=lambda i: abs(candidates[i].stamp_ns - frame.stamp_ns),
                default=None,
            )
            if best is not None and abs(candidates[best].stamp_ns - frame.stamp_ns) <= self.slop_ns:
                self._discard(other, best)  # partners older than the match can only pair worse
                partner = cast(F, candidates.popleft())  # one kind of frame per pairer
                self._discard(stream, len(self._queues[stream]))  # all older than `frame`
                if self._jumped is partner:
                    self._jumped = None
                    self._stats = replace(self._stats, stale=self._stats.stale + 1)
                    return None
                self._stats = replace(self._stats, pairs=self._stats.pairs + 1)
                return Pair(ir=frame, visible=partner) if stream == "ir" else Pair(ir=partner, visible=frame)

            queue = self._queues[stream]
            queue.append(frame)
            if len(queue) > self.max_queue:
                queue.popleft()
                self._stats = replace(self._stats, dropped_queue=self._stats.dropped_queue + 1)
            return None

    def _discard(self, stream: str, count: int) -> None:
        """Drop the `count` oldest frames of `stream`, counting them as unpaired."""
        queue = self._queues[stream]
        for _ in range(count):
            queue.popleft()
        field = "unpaired_ir" if stream == "ir" else "unpaired_visible"
        self._stats = replace(self._stats, **{field: getattr(self._stats, field) + count})
