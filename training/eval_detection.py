"""fusion-eval --task detection: does fusion help the pretrained detector? (issue 7 item 4)

The frozen COCO CenterNet (docs/detector.md) runs through the product's own runtime
(FusionPipeline, each pair at its own size) on every labelled pair here, fed four ways:
visible only, IR only (replicated to 3 channels), mean fusion (0.5·IR + 0.5·visible Y, visible
chroma) and our fusion model. Scores: pycocotools mAP@0.5 and mAP@[.5:.95], per class and overall
(training/metrics/detection.py). The pairs are the evaluation part of the fixed labelled split
(training/configs/data/labelled_split.yaml): neither the detection-driven training nor the seg head
ever trains on them. ``--compare NAME=MODEL`` adds rows (e.g. the detection-driven model).

Writes to --out: ``metrics.md`` (the tables) and ``contact_sheet.png`` (boxes on a few pairs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fusion_node import defaults
from fusion_node.pipeline import Detection, PipelineError
from fusion_node.pipeline.visualize import labelled_tile, overlay, stack_rows
from training.data import DataError
from training.data.split import SPLIT_FILE, evaluation_split
from training.export import DETECTOR_SIZE, SCORE_THRESHOLD, ExportError, export_onnx, load_detector
from training.metrics.detection import detection_map
from training.metrics.errors import MetricsError
from training.models.centernet import ROAD_CLASSES
from training.paths import CENTERNET, REPO_ROOT
from training.pipelines import pipelines_by_size

SHEET_PAIRS = ("01981", "00858N", "010008")  # one per dataset: M3FD people, MSRS night, LLVIP
DISPLAY_SCORE = defaults.SCORE_THRESHOLD  # boxes drawn on the sheet: what the node publishes
SHEET_TILE_HEIGHT = 240


@dataclass(frozen=True)
class LabelledPair:
    """One evaluation pair: uint8 IR H×W, visible BGR H×W×3, boxes x1y1x2y2 px, road-class labels."""

    dataset: str
    name: str
    ir: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


def evaluation_pairs() -> list[LabelledPair]:
    """The evaluation part of the fixed labelled split, labels indexing ROAD_CLASSES."""
    try:
        split = evaluation_split()
    except DataError as err:
        raise MetricsError(f"evaluation pairs: {err}") from err
    return [
        LabelledPair(
            spec.kind.upper(), pair.name, _to_uint8(pair.ir), _to_uint8(pair.visible), pair.boxes, pair.labels
        )
        for spec, pair in split
    ]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """The loaders' float 0..1 (uint8 / 255) back to the exact uint8 the file held."""
    return np.round(image * 255).astype(np.uint8)


class RuleFusion(nn.Module):
    """A fixed fusion rule in the fusion net's place: Y = w·IR + (1 − w)·visible Y."""

    def __init__(self, ir_weight: float) -> None:
        super().__init__()
        self.ir_weight = ir_weight

    def forward(self, ir: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.ir_weight * ir + (1.0 - self.ir_weight) * y


def _rule_model(ir_weight: float, out: Path, detector_size: int) -> Path:
    """The same detector behind a fixed fusion rule, exported as a contract model."""
    metadata = {"model_name": out.stem, "seg_class_names": '["unlabelled"]', "description": "eval rule"}
    try:
        fusion, detector = RuleFusion(ir_weight), load_detector(CENTERNET)
        return export_onnx(fusion, detector, out, metadata=metadata, detector_size=detector_size)[0]
    except ExportError as err:
        raise MetricsError(f"building the {out.stem} detector model: {err}") from err


Detect = Callable[[LabelledPair], tuple[np.ndarray, list[Detection]]]
"""Runs one method on a pair: (the image the detector saw, its detections in visible pixels)."""


def pipeline_detector(model: Path, *, ir_as_visible: bool = False) -> Detect:
    """A model through FusionPipeline, each pair at its own size (rounded to the size divisor),
    with the graph's own score threshold (mAP needs the low-score tail) and the runtime's NMS."""
    pipeline_for = pipelines_by_size(model, score_threshold=SCORE_THRESHOLD)

    def detect(pair: LabelledPair) -> tuple[np.ndarray, list[Detection]]:
        visible = cv2.cvtColor(pair.ir, cv2.COLOR_GRAY2BGR) if ir_as_visible else pair.visible
        try:
            result = pipeline_for(*pair.ir.shape).process(pair.ir, visible)
        except PipelineError as err:
            raise MetricsError(f"{model} on {pair.dataset} {pair.name}: {err}") from err
        return result.fused, result.detections

    return detect


def evaluate(pairs: Sequence[LabelledPair], methods: dict[str, Detect]) -> dict[str, list[list[Detection]]]:
    """method → detections per pair (same order as ``pairs``)."""
    found: dict[str, list[list[Detection]]] = {m: [] for m in methods}
    for pair in tqdm(pairs, desc="detection-eval", unit="pair"):
        for method, detect in methods.items():
            found[method].append(detect(pair)[1])
    return found


def scores(pairs: Sequence[LabelledPair], detections: Sequence[list[Detection]]) -> dict[str, Any]:
    """pycocotools' numbers for one method: map50, map and the per-class lists (NaN: no ground truth)."""
    preds = [
        {
            "boxes": np.array([d.box for d in dets], np.float64).reshape(-1, 4),
            "scores": [d.score for d in dets],
            "labels": [d.class_id for d in dets],
        }
        for dets in detections
    ]
    gts = [{"boxes": p.boxes, "labels": p.labels} for p in pairs]
    return detection_map(preds, gts, len(ROAD_CLASSES))


def _cell(value: float) -> str:
    return "–" if np.isnan(value) else f"{100 * value:.1f}"


def markdown(pairs: Sequence[LabelledPair], found: dict[str, list[list[Detection]]]) -> str:
    """The tables: overall and per dataset, then per class (AP@0.5 / AP@[.5:.95], in %)."""
    datasets = sorted({p.dataset for p in pairs}, key=[p.dataset for p in pairs].index)
    counts = {c: int(sum((p.labels == i).sum() for p in pairs)) for i, c in enumerate(ROAD_CLASSES)}
    lines = [
        f"# Detection on the fused image: {len(pairs)} labelled pairs, the frozen COCO CenterNet",
        "",
        "mAP in % (pycocotools, area all, 100 detections); per dataset: mAP@0.5.",
        "",
        "| detector input | mAP@0.5 | mAP@[.5:.95] | " + " | ".join(datasets) + " |",
        "|---|---:|---:|" + "---:|" * len(datasets),
    ]
    per_class = []
    for method, dets in found.items():
        overall = scores(pairs, dets)
        subsets = []
        for name in datasets:
            index = [i for i, p in enumerate(pairs) if p.dataset == name]
            subsets.append(scores([pairs[i] for i in index], [dets[i] for i in index])["map50"])
        lines.append(
            f"| {method} | {_cell(overall['map50'])} | {_cell(overall['map'])} | "
            + " | ".join(_cell(v) for v in subsets)
            + " |"
        )
        cells = [
            f"{_cell(a50)} / {_cell(a)}"
            for a50, a in zip(overall["ap50_per_class"], overall["ap_per_class"], strict=True)
        ]
        per_class.append(f"| {method} | " + " | ".join(cells) + " |")
    present = [f"{c} ({n})" for c, n in counts.items()]
    lines += [
        "",
        "Per class, AP@0.5 / AP@[.5:.95] in % (ground-truth boxes in brackets; – = none):",
        "",
        "| detector input | " + " | ".join(present) + " |",
        "|---|" + "---:|" * len(present),
        *per_class,
        "",
        f"Pairs per dataset: {json.dumps({d: sum(p.dataset == d for p in pairs) for d in datasets})}. "
        f"The evaluation part of `{SPLIT_FILE.relative_to(REPO_ROOT)}`. Labels: M3FD COCO JSON "
        "(People→person; Lamp dropped), MSRS `msrs_detection_labels/fusion/test` (the union of the "
        "IR and visible labels), LLVIP VOC XML.",
    ]
    return "\n".join(lines) + "\n"


def _tile(image: np.ndarray, pair: LabelledPair, detections: list[Detection], label: str) -> np.ndarray:
    drawn = overlay(image, None, [d for d in detections if d.score >= DISPLAY_SCORE])
    for x1, y1, x2, y2 in pair.boxes.round().astype(int):  # ground truth: thin white
        cv2.rectangle(drawn, (x1, y1), (x2, y2), (255, 255, 255), 1)
    return labelled_tile(drawn, label, SHEET_TILE_HEIGHT)


def contact_sheet(pairs: Sequence[LabelledPair], methods: dict[str, Detect]) -> np.ndarray:
    """One row per pair: each method's detector input with its boxes (score ≥ the node's default
    threshold, coloured by class, named) and the ground truth (thin white)."""
    rows = []
    for pair in pairs:
        tiles = []
        for method, detect in methods.items():
            image, dets = detect(pair)
            tiles.append(_tile(image, pair, dets, f"{method} | {pair.dataset} {pair.name}"))
        rows.append(np.hstack(tiles))
    return stack_rows(rows)


def run(
    model: Path,
    out: Path,
    *,
    detector_size: int,
    compare: dict[str, Path] | None = None,
    limit: int | None = None,
) -> Path:
    """The four rows for ``model`` and one per ``compare`` model (on the first ``limit`` pairs:
    quick checks); writes ``out``/metrics.md and contact_sheet.png, returns the table's path."""
    models = {f"ours ({model.name})": model, **{f"{n} ({m.name})": m for n, m in (compare or {}).items()}}
    for path in models.values():
        if not path.is_file():
            raise MetricsError(f"model {path} not found: export one with fusion-export")
    pairs = evaluation_pairs()[:limit]
    with tempfile.TemporaryDirectory(prefix="fusion-eval-det-") as tmp:
        identity = _rule_model(0.0, Path(tmp) / "visible.onnx", detector_size)
        methods: dict[str, Detect] = {
            "visible only": pipeline_detector(identity),
            "IR only": pipeline_detector(identity, ir_as_visible=True),
            "mean fusion": pipeline_detector(_rule_model(0.5, Path(tmp) / "mean.onnx", detector_size)),
            **{row: pipeline_detector(path) for row, path in models.items()},
        }
        table = markdown(pairs, evaluate(pairs, methods))
        sheet = contact_sheet([p for p in pairs if p.name in SHEET_PAIRS] or pairs[:1], methods)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.md").write_text(table)
    cv2.imwrite(str(out / "contact_sheet.png"), sheet)
    return out / "metrics.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """fusion-eval's options of this task."""
    parser.add_argument(
        "--detector-size", type=int, default=DETECTOR_SIZE,
        help="detector input's longer side for the visible/IR/mean rows (match the model's export)",
    )  # fmt: skip
