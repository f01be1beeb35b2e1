"""fusion-eval end to end on real TNO pairs: fused folders, an ONNX model through FusionPipeline."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_node.pipeline.pair_files import find_pairs
from fusion_node.pipeline.visualize import TILE_LABEL_HEIGHT as SHEET_LABEL_HEIGHT
from training.config import load_config
from training.data.config import build_datasets, fusion_val_pairs
from training.evaluate import RULES, SHEET_BASELINES, SHEET_TILE_HEIGHT, main, rule_fuser
from training.metrics.fusion import GOAL_METRICS, METRICS, fusion_metrics, read_gray, to_gray
from training.metrics.reference import REFERENCE_METRICS, load_reference

N_PAIRS = 3


def _csv_rows(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    with path.open(newline="") as f:
        return {(r["method"], r["image"]): {n: float(r[n]) for n in METRICS} for r in csv.DictReader(f)}


def test_fused_dir_matches_reference_and_lists_every_method(tno: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    argv = ["--fused-dir", str(tno / "baselines" / "DenseFuse"), "--data", str(tno), "--out", str(out)]
    assert main([*argv, "--limit", str(N_PAIRS), "--name", "ours"]) == 0

    baselines = sorted(p.name for p in (tno / "baselines").iterdir() if p.is_dir())
    table = (out / "metrics.md").read_text()
    for method in ["ours", *baselines]:
        assert f"| {method} |" in table
    assert f"mean over {N_PAIRS} image pairs" in table
    assert table.count("**") >= 2 * len(METRICS)  # a bold best in every column
    # ours *is* DenseFuse, so it never beats it: at most len(baselines) - 1 for every metric.
    assert f"ours beats {len(baselines)} of {len(baselines)}" not in table
    assert all(f"- {n}: ours beats" in table for n in METRICS)

    rows = _csv_rows(out / "metrics.csv")
    assert len(rows) == N_PAIRS * (1 + len(baselines))
    for name in REFERENCE_METRICS:
        ref = load_reference(tno / "reference_metrics", name)
        for i in range(1, N_PAIRS + 1):
            expected = ref["DenseFuse"][i - 1]
            assert rows[("ours", f"{i:02d}")][name] == pytest.approx(expected, rel=1e-6), name
            assert rows[("PMGI", f"{i:02d}")][name] == pytest.approx(ref["PMGI"][i - 1], rel=1e-6), name

    sheet = cv2.imread(str(out / "contact_sheet.png"), cv2.IMREAD_COLOR)
    assert sheet is not None
    assert sheet.shape[0] == N_PAIRS * (SHEET_TILE_HEIGHT + SHEET_LABEL_HEIGHT)
    tile_w = round(768 * SHEET_TILE_HEIGHT / 576)  # pairs 01..03 are 768×576
    assert sheet.shape[1] == tile_w * (2 + 1 + SHEET_BASELINES)


def test_model_through_fusion_pipeline(
    tno: Path, tmp_path: Path, contract_model: Callable[..., Path]
) -> None:
    # The contract model fuses as max(IR, visible); at the images' own size nothing is resized.
    model = contract_model(input_size=(576, 768))
    baselines = tmp_path / "baselines"
    (baselines / "U2Fusion").mkdir(parents=True)
    for i in (1, 2):
        (baselines / "U2Fusion" / f"{i:02d}.png").write_bytes(
            (tno / "baselines" / "U2Fusion" / f"{i:02d}.png").read_bytes()
        )
    (baselines / "Partial").mkdir()  # lacks images: must be skipped and reported
    out = tmp_path / "eval"
    argv = ["--model", str(model), "--data", str(tno), "--baselines", str(baselines), "--out", str(out)]
    # --compare adds a row for another model without counting it as a baseline
    assert main([*argv, "--limit", "2", "--name", "contract", "--compare", f"again={model}"]) == 0

    rows = _csv_rows(out / "metrics.csv")
    assert sorted({m for m, _ in rows}) == ["U2Fusion", "again", "contract"]
    assert rows[("again", "02")] == rows[("contract", "02")]
    table = (out / "metrics.md").read_text()
    assert "| again |" in table and "contract beats" in table and "of 1 baselines" in table
    ir, vis = read_gray(tno / "ir" / "02.png"), read_gray(tno / "vi" / "02.png")
    expected = fusion_metrics(np.maximum(ir, vis), ir, vis)
    for name, value in expected.items():
        assert rows[("contract", "02")][name] == pytest.approx(value, rel=1e-9), name
    assert "Skipped baselines (missing images): Partial." in table


def test_trivial_fusions_and_per_method_counts(tno: Path, tmp_path: Path) -> None:
    pair = find_pairs(tno, strict=True)[0]
    ir = cv2.imread(str(pair.ir), cv2.IMREAD_GRAYSCALE).astype(np.float64)
    y = cv2.cvtColor(cv2.imread(str(pair.visible), cv2.IMREAD_COLOR), cv2.COLOR_BGR2YCrCb)[..., 0]
    # Recoloured with the visible CrCb and read back as MATLAB gray: within rounding of the rule on Y.
    contrast_sum = np.clip(ir + y - (ir.mean() + y.mean()) / 2, 0, 255)
    expectations = {"mean": (ir + y) / 2, "max": np.maximum(ir, y), "contrast sum": contrast_sum}
    for rule, expected in expectations.items():
        gray = to_gray(rule_fuser(rule)(pair)).astype(np.float64)
        assert np.abs(gray - expected).max() <= 2, rule

    out = tmp_path / "eval"
    argv = ["--fused-dir", str(tno / "baselines" / "DenseFuse"), "--data", str(tno), "--out", str(out)]
    assert main([*argv, "--limit", "2", "--name", "ours", "--trivial"]) == 0
    rows = _csv_rows(out / "metrics.csv")
    assert {("mean", "02"), ("max", "02")} <= rows.keys()
    table = (out / "metrics.md").read_text()
    assert all(f"| {rule} |" in table for rule in RULES)
    assert "of 9 baselines" in table  # the rules are rows, not baselines
    # ours is DenseFuse's own images: a tie is no win, so 0 of the goal metrics against it.
    assert f"- DenseFuse: 0 of {len(GOAL_METRICS)} (none)" in table
    assert table.count(f" of {len(GOAL_METRICS)} (") == 9 + len(RULES)


def test_errors_exit_1_with_message(tno: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--data", str(tno), "--out", str(tmp_path / "eval"), "--limit", "1"]
    assert main(["--model", str(tmp_path / "missing.onnx"), *out]) == 1
    assert "ERROR: model" in capsys.readouterr().err
    assert main(["--fused-dir", str(tno / "baselines" / "SDNet"), "--name", "SDNet", *out]) == 1
    assert "is also a baseline folder" in capsys.readouterr().err
    assert main(["--fused-dir", str(tno / "baselines" / "SDNet"), "--compare", "nopath", *out]) == 1
    assert "expected NAME=MODEL.onnx" in capsys.readouterr().err
    assert main(["--fused-dir", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "e")]) == 1
    assert "neither ir/ + vi/ nor infrared/ + visible/" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path / "missing.pt"), *out]) == 1
    assert "ERROR: exporting" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


def test_val_of_scores_the_trainers_validation_pairs(tno: Path, tmp_path: Path) -> None:
    # A recipe whose fusion data is 4 pairs, half held out: --val-of must score exactly the pairs the
    # trainer validates on (build_datasets' split), with no baselines.
    data = tmp_path / "pairs"
    for sub in ("ir", "vi"):
        (data / sub).mkdir(parents=True)
        for i in range(1, 5):
            (data / sub / f"{i:02d}.png").write_bytes((tno / sub / f"{i:02d}.png").read_bytes())
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data:\n  fusion_train: [{{kind: paired, root: {data}}}]\n  val_fraction: 0.5\n")
    cfg = load_config(recipe)
    val = build_datasets(cfg.data, cfg.class_names, cfg.seg_class_names)["fusion_val"]
    trainer_names = [val[i]["name"] for i in range(len(val))]
    assert len(trainer_names) == 2
    assert [p.name for p in fusion_val_pairs(cfg.data)] == trainer_names

    out = tmp_path / "eval"
    ours = ["--fused-dir", str(data / "ir"), "--out", str(out)]  # "ours" is the IR image itself
    assert main([*ours, "--val-of", str(recipe), "--trivial"]) == 0
    assert sorted({name for _, name in _csv_rows(out / "metrics.csv")}) == sorted(trainer_names)
    table = (out / "metrics.md").read_text()
    assert table.startswith("# Fusion metrics: ours, mean over 2 image pairs")
    assert "baselines" not in table
    assert table.count(f" of {len(GOAL_METRICS)} (") == len(RULES)
    assert main([*ours, "--val-of", str(tmp_path / "none.yaml")]) == 1  # a clear error, not a traceback
