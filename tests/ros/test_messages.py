"""Pipeline results -> rclpy messages: a reused Image is refilled in place and reads back exactly."""

from __future__ import annotations

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from fusion_node.pipeline import image_to_numpy
from fusion_node.ros.messages import image_msg


def test_a_reused_image_is_refilled_in_place_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, 256, (48, 64, 3), np.uint8) for _ in range(2))
    msg = image_msg(first, "bgr8", Header(frame_id="a"))
    pixels = msg.data
    again = image_msg(second, "bgr8", Header(frame_id="b"), reuse=msg)
    assert again is msg and again.data is pixels  # same message, same pixel array: no allocation
    back = deserialize_message(serialize_message(again), Image)
    assert back.header.frame_id == "b"
    np.testing.assert_array_equal(image_to_numpy(back), second)

    mono = rng.integers(0, 256, (48, 64), np.uint8)  # another size: a new pixel array
    changed = image_msg(mono, "mono8", Header(), reuse=msg)
    assert (changed.encoding, changed.step, len(changed.data)) == ("mono8", 64, 48 * 64)
    np.testing.assert_array_equal(image_to_numpy(changed), mono)
