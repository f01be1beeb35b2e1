"""The fixed train / evaluation split of the labelled pairs and its three users."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from training.data.boxcache import box_cache
from training.data.errors import DataError
from training.data.split import evaluation_split, labelled_specs, open_labelled, split_indices, training_set
from training.data.transforms import EvalTransform
from training.seg_config import DEFAULT_CONFIG, load_seg_config
from training.train_seg import load_pairs

# The evaluation part: M3FD val + test, LLVIP's last three, the MSRS samples (docs/detector.md).
EVAL_PAIRS = {"00388", "01587", "01981", "010007", "010008", "010009", "00016N", "00036N", "00858N"}


def test_split_parts_are_fixed_disjoint_and_labelled(data_dir: Path) -> None:
    evaluation = evaluation_split()
    assert {pair.name for _, pair in evaluation} == EVAL_PAIRS
    assert all(len(pair.labels) for _, pair in evaluation)  # every evaluation pair has GT boxes
    train = training_set(EvalTransform(None))
    names = {train[i]["name"] for i in range(len(train))}
    assert len(train) == 10 + 6 and not names & EVAL_PAIRS
    assert sum(len(train[i]["labels"]) for i in range(len(train))) > 0


def test_the_seg_head_uses_the_same_split(data_dir: Path, tmp_path: Path) -> None:
    cfg = load_seg_config(DEFAULT_CONFIG)
    assert all(spec in cfg.datasets for spec in labelled_specs())  # from the split file, not restated
    cfg.datasets = [d for d in cfg.datasets if d.labelled]  # GT boxes only: no detector needed
    cfg.train.image = "visible"
    caches = {spec.name: box_cache(spec, cfg.detector, cache_dir=tmp_path) for spec in cfg.datasets}
    train, held_out = load_pairs(cfg, caches)
    assert {p.name for p in held_out} == EVAL_PAIRS
    assert not EVAL_PAIRS & {p.name for p, _ in train} and len(train) == 10 + 6


def test_a_missing_evaluation_name_is_an_error(data_dir: Path) -> None:
    spec = next(s for s in labelled_specs() if s.eval_names)
    with pytest.raises(DataError, match="not in the dataset"):
        split_indices(replace(spec, eval_names=["nope"]), open_labelled(spec), "eval")
