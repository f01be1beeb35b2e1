"""fusion-eval --task detection: the labelled evaluation pairs, the scoring, the command."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_node.pipeline import Detection
from training.eval_detection import LabelledPair, evaluation_pairs, markdown, scores
from training.evaluate import main
from training.models.centernet import ROAD_CLASSES
from training.paths import CENTERNET, REPO_ROOT, SHARED_DATA

from .test_split import EVAL_PAIRS

MODEL = REPO_ROOT / "models" / "fusion_rt.onnx"


@pytest.fixture(scope="module")
def pairs() -> list[LabelledPair]:
    if not (SHARED_DATA / "m3fd").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return evaluation_pairs()


def test_the_evaluation_part_of_the_fixed_split(pairs: list[LabelledPair]) -> None:
    counts = {d: sum(p.dataset == d for p in pairs) for d in ("M3FD", "MSRS", "LLVIP")}
    assert counts == {"M3FD": 3, "MSRS": 3, "LLVIP": 3}
    assert {p.name for p in pairs} == EVAL_PAIRS
    for pair in pairs:
        assert pair.ir.dtype == np.uint8 and pair.visible.shape == (*pair.ir.shape, 3)
        assert len(pair.boxes) == len(pair.labels) and (pair.labels < len(ROAD_CLASSES)).all()
        height, width = pair.ir.shape
        assert (pair.boxes[:, 2:] <= [width + 1, height + 1]).all()  # pixels of this pair
    names = {ROAD_CLASSES[i] for p in pairs for i in p.labels}
    assert {"person", "car"} <= names  # M3FD "People" mapped; "Lamp" dropped (no class)
    llvip = [p for p in pairs if p.dataset == "LLVIP"]
    assert all(set(p.labels.tolist()) <= {0} for p in llvip) and sum(len(p.labels) for p in llvip) > 0


def test_perfect_and_empty_detections_score_100_and_0(pairs: list[LabelledPair]) -> None:
    perfect = [
        [Detection(tuple(map(float, b)), int(c), ROAD_CLASSES[c], 0.9) for b, c in zip(*xy, strict=True)]
        for xy in ((p.boxes, p.labels) for p in pairs)
    ]
    result = scores(pairs, perfect)
    assert result["map50"] == pytest.approx(1.0) and result["map"] == pytest.approx(1.0)
    assert scores(pairs, [[] for _ in pairs])["map50"] == 0.0
    table = markdown(pairs, {"perfect": perfect, "none": [[] for _ in pairs]})
    assert "| perfect | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in table
    assert "| none | 0.0 | 0.0 |" in table and "bicycle (0)" in table  # no bicycle in these labels


@pytest.mark.skipif(not (MODEL.is_file() and CENTERNET.is_file()), reason="default model or detector missing")
def test_command_prints_the_four_rows(
    pairs: list[LabelledPair], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--task", "detection", "--model", str(MODEL), "--out", str(tmp_path)]
    assert main([*argv, "--limit", "2", "--detector-size", "128"]) == 0
    out = capsys.readouterr().out
    for row in ("visible only", "IR only", "mean fusion", "ours (fusion_rt.onnx)"):
        assert f"| {row} |" in out
    sheet = cv2.imread(str(tmp_path / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] > 4 * 200  # one row, four methods
    assert main(["--task", "detection", "--model", str(tmp_path / "none.onnx")]) == 1
    assert capsys.readouterr().err.startswith("ERROR: model")
