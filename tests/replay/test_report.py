"""write_report: the table, the JSON and the contact sheet's layout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from fusion_node.pipeline.visualize import TILE_LABEL_HEIGHT as LABEL_HEIGHT
from fusion_node.replay import ReportSample, write_report
from fusion_node.replay.report import COLUMNS, TILE_WIDTH


def test_report_numbers_and_contact_sheet(msrs_dir: Path, tmp_path: Path) -> None:
    ir = cv2.imread(str(msrs_dir / "ir" / "00016N.png"), cv2.IMREAD_GRAYSCALE)
    visible = cv2.imread(str(msrs_dir / "vi" / "00016N.png"), cv2.IMREAD_COLOR)
    ir16 = ir.astype(np.uint16) * 8 + 20_000  # a raw thermal frame must be displayable too
    fused = np.maximum(visible, ir[..., None])
    samples = [ReportSample(ir, visible, fused, fused), ReportSample(ir16, visible, fused, visible)]
    report = write_report(
        tmp_path / "out",
        title="Unit report",
        latencies_ms=[10.0, 20.0, 30.0, 40.0],
        wall_time_s=2.0,
        frames_in=10,
        frames_out=4,
        dropped=1,
        unpaired=2,
        samples=samples,
        extra={"model": "contract_test"},
    )
    assert report == tmp_path / "out" / "report.md"
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["latency_p50_ms"] == 25.0
    assert data["latency_max_ms"] == 40.0
    assert data["fps"] == 2.0
    assert (data["dropped"], data["unpaired"], data["model"]) == (1, 2, "contract_test")
    text = report.read_text()
    assert "| latency_p50_ms | 25.00 |" in text and "| model | contract_test |" in text
    assert "contact_sheet.png" in text

    sheet = cv2.imread(str(tmp_path / "out" / "contact_sheet.png"), cv2.IMREAD_UNCHANGED)
    tile_h = TILE_WIDTH * 480 // 640
    assert sheet.shape == (2 * (LABEL_HEIGHT + tile_h), len(COLUMNS) * TILE_WIDTH, 3)
    # Column 2 of row 1 is the visible image, column 3 the fused one: their tiles differ.
    row = sheet[LABEL_HEIGHT : LABEL_HEIGHT + tile_h]
    expected_vis = cv2.resize(visible, (TILE_WIDTH, tile_h), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(row[:, TILE_WIDTH : 2 * TILE_WIDTH], expected_vis)
    assert np.any(row[:, 2 * TILE_WIDTH : 3 * TILE_WIDTH] != expected_vis)
    # The 16-bit IR of row 2 is stretched to the full 8-bit range for display.
    ir_tile = sheet[2 * LABEL_HEIGHT + tile_h :, :TILE_WIDTH]
    assert ir_tile.max() >= 250 and ir_tile.min() <= 5


def test_report_without_samples_or_frames(tmp_path: Path) -> None:
    write_report(
        tmp_path, title="Empty", latencies_ms=[], wall_time_s=0.0, frames_in=0, frames_out=0,
        dropped=0, unpaired=0, samples=[],
    )  # fmt: skip
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["latency_p50_ms"] is None and data["fps"] is None
    assert not (tmp_path / "contact_sheet.png").exists()
    assert "| fps | – |" in (tmp_path / "report.md").read_text()
