"""QoS of the node's topics: defaults, user overrides and incompatibility events.

Defaults: camera subscriptions take the `reliability` and `queue_depth` parameters (best_effort =
SensorDataQoS), outputs are reliable, label info is also transient local. Every publisher and
subscription accepts `qos_overrides.<topic>.<publisher|subscription>.<history|depth|reliability>`
parameters (set at start, in the params file), as quality_of_service_demo_py's
qos_overrides_listener does; they win over the defaults. An incompatible-QoS event (a peer's QoS
cannot match ours) goes to a handler with the policy's name, so /diagnostics can say which topic
and policy, not only "silent".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSPolicyKind,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions

try:  # rclpy >= Iron
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks  # type: ignore[no-redef,unused-ignore]

# (policy name) -> None: called in the executor thread when a peer's QoS is incompatible.
IncompatibleHandler = Callable[[str], None]


def input_qos(reliability: str, depth: int) -> QoSProfile:
    """A camera subscription's default QoS: `reliability` "reliable", else SensorDataQoS's."""
    if reliability == "reliable":
        return QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE)
    return QoSProfile(
        depth=depth,
        reliability=qos_profile_sensor_data.reliability,
        durability=qos_profile_sensor_data.durability,
    )


def output_qos(depth: int) -> QoSProfile:
    """An output's default QoS: reliable, volatile, keep last `depth`."""
    return QoSProfile(depth=depth, reliability=QoSReliabilityPolicy.RELIABLE)


def latched_qos() -> QoSProfile:
    """Label info's QoS: the last message kept for late subscribers (transient local), reliable."""
    return QoSProfile(
        depth=1, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
    )


def _policy(info: Any) -> str:
    """The policy an incompatible-QoS event names (RELIABILITY, DURABILITY, ...)."""
    return QoSPolicyKind(info.last_policy_kind).name


def subscription_options(on_incompatible: IncompatibleHandler) -> dict[str, Any]:
    """create_subscription keywords: overridable QoS, incompatible-QoS events to `on_incompatible`."""
    return {
        "qos_overriding_options": QoSOverridingOptions.with_default_policies(),
        "event_callbacks": SubscriptionEventCallbacks(
            incompatible_qos=lambda info: on_incompatible(_policy(info))
        ),
    }


def publisher_options(on_incompatible: IncompatibleHandler) -> dict[str, Any]:
    """create_(lifecycle_)publisher keywords: as `subscription_options`, for a publisher."""
    return {
        "qos_overriding_options": QoSOverridingOptions.with_default_policies(),
        "event_callbacks": PublisherEventCallbacks(
            incompatible_qos=lambda info: on_incompatible(_policy(info))
        ),
    }
