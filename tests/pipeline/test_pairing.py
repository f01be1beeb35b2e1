"""Approximate-time pairing: slop, newest pair wins, bounded queues, time jumps."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_node.pipeline import ApproximateTimePairer, Frame, PipelineError

MS = 1_000_000
IMAGE = np.zeros((2, 2), np.uint8)


def frame(stamp_ms: float, frame_id: str = "cam") -> Frame:
    return Frame(IMAGE, int(stamp_ms * MS), frame_id)


def test_pairs_only_within_slop() -> None:
    pairer = ApproximateTimePairer(slop_ns=10 * MS)
    assert pairer.push("ir", frame(0, "ir")) is None
    assert pairer.push("visible", frame(25, "vis")) is None
    pair = pairer.push("ir", frame(30, "ir"))
    assert pair is not None
    assert (pair.ir.stamp_ns, pair.visible.stamp_ns) == (30 * MS, 25 * MS)
    assert pair.ir.frame_id == "ir" and pair.visible.frame_id == "vis"
    stats = pairer.stats
    assert (stats.pairs, stats.unpaired_ir, stats.unpaired_visible) == (1, 1, 0)


def test_newest_pair_wins_and_older_frames_are_counted() -> None:
    pairer = ApproximateTimePairer(slop_ns=3 * MS)
    for t in (0, 10, 20):
        assert pairer.push("ir", frame(t)) is None
    pair = pairer.push("visible", frame(19))
    assert pair is not None and pair.ir.stamp_ns == 20 * MS
    assert pairer.stats.unpaired_ir == 2


def test_closest_partner_and_newer_ones_stay_queued() -> None:
    pairer = ApproximateTimePairer(slop_ns=5 * MS)
    for t in (100, 104, 110):
        pairer.push("visible", frame(t))
    pair = pairer.push("ir", frame(103))
    assert pair is not None and pair.visible.stamp_ns == 104 * MS
    assert pairer.stats.unpaired_visible == 1  # 100 dropped, 110 kept for the next IR frame
    pair = pairer.push("ir", frame(111))
    assert pair is not None and pair.visible.stamp_ns == 110 * MS


def test_queues_are_bounded() -> None:
    pairer = ApproximateTimePairer(slop_ns=1 * MS, max_queue=8)
    for t in range(20):
        pairer.push("ir", frame(t * 100))
    assert pairer.stats.dropped_queue == 12
    pair = pairer.push("visible", frame(1900))
    assert pair is not None
    stats = pairer.stats
    # Every frame is accounted for exactly once.
    assert stats.pairs + stats.unpaired_ir + stats.dropped_queue == 20
    assert stats.unpaired_ir == 7


def test_time_jump_clears_drops_the_stale_pair_and_recovers() -> None:
    pairer = ApproximateTimePairer(slop_ns=5 * MS)
    pairer.push("ir", frame(1000))
    pairer.push("visible", frame(990))
    pairer.push("ir", frame(50))  # bag looped
    stats = pairer.stats
    assert stats.time_jumps == 1 and stats.pairs == 0
    assert stats.unpaired_ir == 1 and stats.unpaired_visible == 1
    # The pair with the frame that jumped is stale: it may be a lone out-of-order frame.
    assert pairer.push("visible", frame(52)) is None  # the other stream jumps too: no second count
    assert (pairer.stats.stale, pairer.stats.time_jumps) == (1, 1)
    pairer.push("ir", frame(150))
    pair = pairer.push("visible", frame(152))  # the restarted streams pair again
    assert pair is not None and pair.ir.stamp_ns == 150 * MS
    assert (pairer.stats.pairs, pairer.stats.stale, pairer.stats.time_jumps) == (1, 1, 1)


def test_a_lone_backward_pair_is_never_returned() -> None:
    pairer = ApproximateTimePairer(slop_ns=5 * MS)
    assert pairer.push("ir", frame(1000)) is None
    assert pairer.push("visible", frame(1001)) is not None
    pairer.push("visible", frame(10))  # one pair an hour old, then the live stream again
    assert pairer.push("ir", frame(12)) is None
    pairer.push("visible", frame(1100))
    pair = pairer.push("ir", frame(1101))
    assert pair is not None and pair.visible.stamp_ns == 1100 * MS
    assert (pairer.stats.pairs, pairer.stats.stale, pairer.stats.time_jumps) == (2, 1, 1)


def test_invalid_arguments() -> None:
    with pytest.raises(PipelineError, match="slop_ns"):
        ApproximateTimePairer(slop_ns=-1)
    with pytest.raises(PipelineError, match="unknown stream 'depth'"):
        ApproximateTimePairer(slop_ns=1).push("depth", frame(0))  # type: ignore[arg-type]
