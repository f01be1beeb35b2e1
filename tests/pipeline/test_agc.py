"""Thermal AGC on synthetic 16-bit scenes."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_node.pipeline import AgcConfig, AutoGain, PipelineError

RAMP = np.tile(np.linspace(1000, 5000, 200), (100, 1)).astype(np.uint16)  # a 16-bit scene


def test_percentile_window_ignores_hot_pixels() -> None:
    scene = RAMP.copy()
    scene.flat[::101] = 65535  # ~1 % dead/hot pixels
    out = AutoGain(AgcConfig(smoothing=0.0))(scene)
    assert out.dtype == np.uint8 and out.shape == scene.shape
    row = np.median(out, axis=0)  # the ramp profile, hot pixels voted out
    assert np.all(np.diff(row) >= 0)  # monotonic ramp survives
    assert row[2] < 10 and row[-3] > 245  # full range used despite the outliers
    assert float(row[100]) == pytest.approx(127, abs=8)


def test_one_disturbed_frame_does_not_flicker() -> None:
    glitch = RAMP.copy()
    glitch[:20] = 20000  # one frame with a hot object (or a sensor glitch) in 20 % of the view

    def brightness_changes(smoothing: float) -> tuple[float, float]:
        """Mean output change of the unchanged ramp rows: on the glitch frame, and one frame later."""
        agc = AutoGain(AgcConfig(smoothing=smoothing))
        for _ in range(30):
            steady = agc(RAMP)[20:].astype(int)
        during = np.abs(agc(glitch)[20:] - steady).mean()
        after = np.abs(agc(RAMP)[20:] - steady).mean()
        return float(during), float(after)

    smooth_during, smooth_after = brightness_changes(0.9)
    raw_during, raw_after = brightness_changes(0.0)
    assert raw_during > 60  # a per-frame window crushes the whole scene on the glitch frame
    assert smooth_during < 0.35 * raw_during
    assert smooth_after < smooth_during  # and recovers without a second jump
    assert raw_after == 0.0


def test_reset_forgets_the_window() -> None:
    agc = AutoGain(AgcConfig(smoothing=0.9))
    agc(RAMP)
    bright = (RAMP + 20000).astype(np.uint16)
    assert agc(bright)[50, 100] == 255  # still (mostly) the old window: the brighter scene saturates
    agc.reset()
    assert int(agc(bright)[50, 100]) == pytest.approx(127, abs=8)


def test_modes() -> None:
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert AutoGain(AgcConfig(mode="auto"))(gray) is gray
    assert AutoGain(AgcConfig(mode="off"))(gray) is gray
    low_contrast = (gray // 4 + 100).astype(np.uint8)
    assert np.ptp(AutoGain(AgcConfig(mode="on", smoothing=0.0))(low_contrast)) > 240
    np.testing.assert_array_equal(AutoGain(AgcConfig(mode="off"))(RAMP), (RAMP >> 8).astype(np.uint8))
    celsius = np.linspace(-5.0, 35.0, 64, dtype=np.float32).reshape(8, 8)
    off = AutoGain(AgcConfig(mode="off"))(celsius)
    assert off.min() == 0 and off.max() == 255


@pytest.mark.parametrize(
    "options",
    [{"mode": "always"}, {"low_percentile": 50, "high_percentile": 10}, {"smoothing": 1.0}],
)
def test_config_validation(options: dict[str, object]) -> None:
    with pytest.raises(PipelineError):
        AgcConfig(**options)  # type: ignore[arg-type]
