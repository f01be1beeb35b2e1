"""Health: the windows and levels behind /diagnostics, driven with explicit times (no sleeping)."""

from __future__ import annotations

import pytest

from fusion_node.ros.health import EVENTS, NEVER, STAGES, Health, HealthConfig, Level

TOPICS = {"ir": "/thermal/image_raw", "visible": "/camera/image_raw"}
CONFIG = HealthConfig(window_s=2.0, stall_timeout_s=4.0, input_timeout_s=1.0, reliability="best_effort")
T0 = 1000.0


def stream(health: Health, start: float, stop: float, *, hz: float = 10.0, publish: bool = True) -> None:
    """Both cameras at `hz` from `start` to `stop`; each pair published 50 ms later when `publish`."""
    steps = round((stop - start) * hz)
    for i in range(steps):
        t = start + i / hz
        health.received("ir", t)
        health.received("visible", t)
        health.count("pairs", t)
        if publish:
            health.published(50.0, t + 0.05)


def test_every_key_is_there_from_the_start_and_silence_is_told_apart() -> None:
    health = Health(CONFIG, TOPICS, T0)
    report = health.report(T0 + 0.5)
    assert report.level == Level.OK
    values = report.values
    windowed = (f"{event}_in_window" for event in EVENTS)
    for key in (*EVENTS, *windowed, "bad_input", "rejected_in_window", "time_jumps"):
        assert values[key] == 0, key
    for camera in TOPICS:
        assert values[f"{camera}_received"] == 0 and values[f"{camera}_rate_hz"] == 0.0
        assert values[f"{camera}_last_frame_age_s"] == NEVER
    assert (values["fps"], values["latency_p50_ms"], values["last_output_age_s"]) == (0.0, 0.0, NEVER)
    assert values["worker"] == "running" and values["last_error"] == ""

    health.received("visible", T0 + 0.6)
    report = health.report(T0 + 2.0)  # IR never sent anything; visible was streaming and stopped
    assert report.level == Level.WARN
    assert "no frame ever received on /thermal/image_raw" in report.message
    assert "check the topic name" in report.message and "reliability=best_effort" in report.message
    assert "/camera/image_raw stopped 1.4 s ago after 1 frames: the camera or its driver" in report.message


def test_steady_output_is_ok_with_rates_and_latency_over_the_window() -> None:
    health = Health(CONFIG, TOPICS, T0)
    stream(health, T0, T0 + 5.0)
    report = health.report(T0 + 5.0)
    assert report.level == Level.OK and report.message.startswith("running: 10.0 outputs/s")
    values = report.values
    assert values["fps"] == pytest.approx(10.0) and values["ir_rate_hz"] == pytest.approx(10.0)
    assert values["latency_p50_ms"] == values["latency_p95_ms"] == 50.0
    assert values["pairs"] == values["outputs"] == 50 and values["ir_received"] == 50
    assert values["pairs_in_window"] == 20 and values["outputs_in_window"] == 20


def test_output_stopping_while_frames_arrive_warns_then_errors_and_rates_fall_to_zero() -> None:
    health = Health(CONFIG, TOPICS, T0)
    stream(health, T0, T0 + 3.0)
    stream(health, T0 + 3.0, T0 + 10.0, publish=False)  # last output at T0 + 2.95
    assert health.report(T0 + 4.0).level == Level.OK  # 1 s: a slow model, not yet a problem
    warn = health.report(T0 + 5.5)
    assert warn.level == Level.WARN and "nothing published for 2.5 s while frames arrive" in warn.message
    error = health.report(T0 + 7.0)
    assert error.level == Level.ERROR and "nothing published for 4.0 s" in error.message
    values = health.report(T0 + 9.95).values
    assert values["fps"] == 0.0 and values["latency_p50_ms"] == 0.0 and values["outputs_in_window"] == 0
    assert values["ir_rate_hz"] == pytest.approx(10.0)  # the inputs are fine
    assert values["last_output_age_s"] == pytest.approx(7.0)


def test_no_frames_at_all_is_not_a_stall_and_a_restart_starts_the_stall_clock_again() -> None:
    health = Health(CONFIG, TOPICS, T0)
    stream(health, T0, T0 + 1.0, publish=False)
    report = health.report(T0 + 20.0)  # cameras off: WARN for them, but no stall ERROR
    assert report.level == Level.WARN and "nothing published" not in report.message
    assert "stopped 19.1 s ago after 10 frames" in report.message
    stream(health, T0 + 20.0, T0 + 21.0, publish=False)
    assert health.report(T0 + 21.0).level == Level.OK  # 1 s since frames came back


def test_rejected_frames_warn_with_the_last_error_until_the_window_passes() -> None:
    health = Health(CONFIG, TOPICS, T0)
    stream(health, T0, T0 + 2.0)
    health.received("visible", T0 + 2.0)
    health.rejected("visible", "unsupported image encoding 'yuv422'", T0 + 2.0)
    report = health.report(T0 + 2.1)
    assert report.level == Level.WARN and "frames rejected in the last 2 s (visible 1)" in report.message
    assert "last error (0.1 s ago): /camera/image_raw: unsupported image encoding 'yuv422'" in report.message
    assert report.values["bad_input"] == report.values["visible_rejected"] == 1
    stream(health, T0 + 2.1, T0 + 5.0)
    later = health.report(T0 + 5.0)
    assert later.level == Level.OK and later.values["rejected_in_window"] == 0
    assert later.values["last_error"] == "/camera/image_raw: unsupported image encoding 'yuv422'"


def test_failed_pairs_warn() -> None:
    health = Health(CONFIG, TOPICS, T0)
    stream(health, T0, T0 + 2.0)
    health.failed("pair at visible stamp 7 ns: RegistrationError: sizes differ", T0 + 2.0)
    report = health.report(T0 + 2.0)
    assert report.level == Level.WARN and "1 pairs failed in the last 2 s" in report.message
    assert report.message.endswith("pair at visible stamp 7 ns: RegistrationError: sizes differ")
    assert report.values["failed"] == report.values["failed_in_window"] == 1


def test_a_time_jump_warns_with_advice_and_restarts_latencies() -> None:
    health = Health(CONFIG, TOPICS, T0)
    health.published(5000.0, T0 + 0.5)  # a stale pair's latency
    health.time_jump("ir", T0 + 0.6)
    health.published(40.0, T0 + 0.7)
    report = health.report(T0 + 0.8)
    assert report.level == Level.WARN and report.values["time_jumps"] == 1
    assert report.values["latency_p95_ms"] == 40.0
    assert "stamps on /thermal/image_raw went backwards" in report.message
    assert "--loop" in report.message and "use_sim_time" in report.message


def test_a_stopped_worker_is_an_error_that_says_why() -> None:
    health = Health(CONFIG, TOPICS, T0)
    stream(health, T0, T0 + 1.0)
    health.worker_stopped("MemoryError: out of memory")
    report = health.report(T0 + 1.0)
    assert report.level == Level.ERROR and report.values["worker"] == "stopped"
    assert report.message.startswith("worker stopped, nothing will be published: MemoryError: out of memory")


def test_stage_timings_overhead_and_built_outputs_cover_the_window() -> None:
    health = Health(CONFIG, TOPICS, T0)
    assert all(health.report(T0).values[f"{stage}_ms"] == 0.0 for stage in STAGES)
    assert health.report(T0).values["outputs_built"] == ""
    for i, overhead in enumerate((1.0, 2.0, 3.0, 4.0, 100.0)):
        stages = {stage: 10.0 * (n + 1) + i for n, stage in enumerate(STAGES)}
        health.published(5.0, T0 + 0.1 * i, stages_ms=stages, overhead_ms=overhead, built=("fused",))
    values = health.report(T0 + 0.5).values
    assert [values[f"{stage}_ms"] for stage in STAGES] == [12.0, 22.0, 32.0, 42.0, 52.0]  # p50
    assert values["overhead_p50_ms"] == 3.0 and 4.0 < float(values["overhead_p95_ms"]) < 100.0
    assert values["outputs_built"] == "fused"
    health.published(5.0, T0 + 3.0, overhead_ms=7.0, built=("fused", "debug_image"))
    values = health.report(T0 + 3.0).values  # the first five left the 2 s window
    assert values["overhead_p50_ms"] == 7.0 and values["inference_ms"] == 0.0
    assert values["outputs_built"] == "fused,debug_image"


def test_incompatible_qos_warns_until_a_frame_comes_or_the_window_passes() -> None:
    health = Health(CONFIG, TOPICS, T0)
    stream(health, T0, T0 + 1.0)
    line = health.incompatible_qos("/camera/image_raw", "subscription", "RELIABILITY", T0 + 1.0)
    health.incompatible_qos("/fusion_node/fused", "publisher", "DURABILITY", T0 + 1.0)
    report = health.report(T0 + 1.1)
    assert report.level == Level.WARN and line in report.message
    assert "qos_overrides./camera/image_raw.subscription.reliability" in line
    assert report.values["qos_incompatible"] == "/camera/image_raw:RELIABILITY,/fusion_node/fused:DURABILITY"
    health.received("visible", T0 + 1.2)  # the camera topic connects: its warning ends
    assert health.report(T0 + 1.3).values["qos_incompatible"] == "/fusion_node/fused:DURABILITY"
    assert health.report(T0 + 1.0 + CONFIG.window_s + 0.1).values["qos_incompatible"] == ""
