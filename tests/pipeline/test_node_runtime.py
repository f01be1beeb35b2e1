"""The node's ROS-free run-time helpers (fusion_node/ros/runtime.py): newest-pair slot, drop
counting, log throttle and run statistics. No rclpy needed, so they are tested with the pipeline."""

from __future__ import annotations

import threading

import pytest

from fusion_node.ros.runtime import LatestSlot, LogThrottle, RunStats


def test_newest_item_wins_and_replaced_items_count_as_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    stats = RunStats()
    for item in range(1, 5):  # the worker is busy: nothing is taken meanwhile
        if slot.put(item):
            stats.count("dropped")
    assert slot.take() == 4
    assert stats.summary()["dropped"] == 3
    assert slot.put(5) is False  # the slot was emptied by take: no drop


def test_take_waits_for_a_put_and_close_wakes_the_worker() -> None:
    slot: LatestSlot[str] = LatestSlot()
    taken: list[str | None] = []
    first_taken = threading.Event()

    def work() -> None:
        taken.append(slot.take())
        first_taken.set()
        taken.append(slot.take())  # waits until close

    worker = threading.Thread(target=work)
    worker.start()
    slot.put("pair")
    assert first_taken.wait(5.0)
    slot.close()
    worker.join(5.0)
    assert not worker.is_alive() and taken == ["pair", None]
    slot.put("late")
    assert slot.take() is None  # closed for good, even with an item waiting


def test_log_throttle_is_per_key() -> None:
    throttle = LogThrottle(1.0)
    assert throttle.ready("ir:encoding", 10.0)
    assert not throttle.ready("ir:encoding", 10.5)
    assert throttle.ready("visible:encoding", 10.5)  # another problem is not hidden by the first
    assert throttle.ready("ir:encoding", 11.0)  # a full period later


def test_run_stats_summary() -> None:
    stats = RunStats(window=4)
    assert stats.summary() == {"latency_p50_ms": 0.0, "latency_p95_ms": 0.0, "fps": 0.0}
    stats.count("pairs", 6)
    for i, latency in enumerate([100.0, 10.0, 20.0, 30.0, 40.0]):  # the first leaves the window
        stats.output(latency, now_s=i * 0.1)
    summary = stats.summary()
    assert summary["latency_p50_ms"] == pytest.approx(25.0)
    assert summary["latency_p95_ms"] == pytest.approx(38.5)
    assert summary["fps"] == pytest.approx(10.0)  # 3 intervals over the window's 0.3 s
    assert (summary["pairs"], summary["outputs"]) == (6, 5)
