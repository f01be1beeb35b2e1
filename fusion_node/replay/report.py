"""Run reports: report.md (table), report.json and contact_sheet.png (IR | visible | fused | overlay).

Replay and the ROS demo both call `write_report`, so their reports read the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fusion_node.pipeline.agc import stretch
from fusion_node.pipeline.visualize import labelled_tile, stack_rows

TILE_WIDTH = 320
COLUMNS = ("IR", "visible", "fused", "overlay")


@dataclass(frozen=True)
class ReportSample:
    """One pair for the contact sheet: IR (H×W, 8 or 16-bit), visible, fused and overlay (BGR)."""

    ir: np.ndarray
    visible: np.ndarray
    fused: np.ndarray
    overlay: np.ndarray


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Display conversion: 16-bit/float images min-max stretched to 8 bits."""
    if image.dtype == np.uint8:
        return image
    return stretch(image, float(image.min()), float(image.max()))


def contact_sheet(samples: Sequence[ReportSample]) -> np.ndarray:
    """One row per sample, columns COLUMNS; tile height follows the first visible image's aspect."""
    h, w = samples[0].visible.shape[:2]
    tile_height = max(1, round(TILE_WIDTH * h / w))
    rows = [
        np.hstack(
            [
                labelled_tile(_to_uint8(img), name, tile_height)
                for name, img in zip(COLUMNS, images, strict=True)
            ]
        )
        for images in ((s.ir, s.visible, s.fused, s.overlay) for s in samples)
    ]
    return stack_rows(rows)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/max/mean in ms (None when there are no samples)."""
    if not latencies_ms:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None, "mean_ms": None}
    values = np.asarray(latencies_ms, np.float64)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "max_ms": float(values.max()),
        "mean_ms": float(values.mean()),
    }


def _cell(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else "–" if value is None else str(value)


def write_report(
    out_dir: Path,
    *,
    title: str,
    latencies_ms: Sequence[float],
    wall_time_s: float,
    frames_in: int,
    frames_out: int,
    dropped: int,
    unpaired: int,
    samples: Sequence[ReportSample],
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Write report.md, report.json and (with samples) contact_sheet.png; return report.md's path.

    Args:
        out_dir: Folder to write into (created).
        title: Heading of report.md.
        latencies_ms: One end-to-end latency per output frame.
        wall_time_s: Duration of the whole run; FPS = frames_out / wall_time_s.
        frames_in: Input frames (IR + visible).
        frames_out: Processed pairs.
        dropped: Pairs or frames dropped by a full queue.
        unpaired: Frames that found no partner within the slop.
        samples: A few evenly spaced pairs for the contact sheet.
        extra: More rows for the table and keys for the JSON (JSON-serialisable values).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {
        "title": title,
        "frames_in": frames_in,
        "frames_out": frames_out,
        "dropped": dropped,
        "unpaired": unpaired,
        "wall_time_s": wall_time_s,
        "fps": frames_out / wall_time_s if wall_time_s > 0 else None,
        **{f"latency_{key}": value for key, value in latency_summary(latencies_ms).items()},
        **dict(extra or {}),
    }
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in summary.items() if key != "title"]
    if samples:
        cv2.imwrite(str(out_dir / "contact_sheet.png"), contact_sheet(samples))
        lines += ["", f"![{' | '.join(COLUMNS)}](contact_sheet.png)"]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
