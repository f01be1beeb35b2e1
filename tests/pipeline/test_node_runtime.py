"""The node's ROS-free run-time helpers (fusion_node/ros/runtime.py): newest-pair slot, drop
counting and log throttle (its health statistics: tests/ros/test_health.py). No rclpy needed."""

from __future__ import annotations

import threading

from fusion_node.ros.runtime import LatestSlot, LogThrottle


def test_newest_item_wins_and_replaced_items_count_as_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    drops = [slot.put(item) for item in range(1, 5)]  # the worker is busy: nothing is taken meanwhile
    assert slot.take() == 4
    assert drops == [False, True, True, True]
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

