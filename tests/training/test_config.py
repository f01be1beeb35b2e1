"""Config loading: YAML + `base:` inheritance, typed overrides, clear errors, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion_node.pipeline.pair_files import find_pairs
from training.config import ConfigError, ExperimentConfig, from_dict, load_config, save_config, to_dict
from training.data import build_datasets
from training.paths import SHARED_DATA

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_trains_on_roadscene(path: Path) -> None:
    cfg = load_config(path)
    assert [s.root for s in cfg.data.fusion_train] == ["../shared/data/roadscene"]
    assert Path(cfg.train.out_dir).name == path.stem


def test_base_inheritance_merges_sections() -> None:
    paper, realtime = load_config(CONFIGS / "paper.yaml"), load_config(CONFIGS / "realtime.yaml")
    assert paper.fusion_net.arch == "paper" and realtime.fusion_net.arch == "realtime"
    assert paper.train.batch_size == 8 and paper.train.max_steps == realtime.train.max_steps
    assert paper.bilevel == realtime.bilevel


def test_ablation_configs_differ_only_in_the_bilevel_rule() -> None:
    modes = {
        name: (cfg.bilevel.mode, cfg.bilevel.aggregation)
        for name in ("fusion_only", "joint_fixed", "bilevel_random", "bilevel_best")
        for cfg in [load_config(CONFIGS / f"ablation_{name}.yaml")]
    }
    assert modes["fusion_only"][0] == "fusion_only"
    assert modes["joint_fixed"] == ("joint", "fixed")
    assert modes["bilevel_random"] == ("bilevel", "random")
    assert modes["bilevel_best"] == ("bilevel", load_config(CONFIGS / "realtime.yaml").bilevel.aggregation)


def test_overrides_are_typed_by_the_dataclass_fields() -> None:
    cfg = load_config(
        CONFIGS / "tiny.yaml",
        [
            "train.max_steps=7",
            "optim.fusion_lr=1e-2",
            "data.crop_size=[32, 48]",
            "optim.clip_grad_norm=null",
            "train.deterministic=true",
            "optim.betas=[0.5, 0.9]",
        ],
    )
    assert cfg.train.max_steps == 7
    assert cfg.optim.fusion_lr == pytest.approx(0.01) and isinstance(cfg.optim.fusion_lr, float)
    assert cfg.data.crop_size == (32, 48)
    assert cfg.optim.clip_grad_norm is None
    assert cfg.train.deterministic is True
    assert cfg.optim.betas == (0.5, 0.9)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_stepz=3", "valid keys in train: max_steps"),
        ("trainer.max_steps=3", "unknown config key 'trainer'"),
        ("train.max_steps=three", "train.max_steps must be an integer"),
        ("bilevel.mode=sideways", "bilevel.mode='sideways' is not one of"),
        ("train.amp=1", "train.amp must be true or false"),
        ("max_steps", "not of the form"),
        ("class_names=[car]", "semantic_net.num_classes=6"),
        ("train.eval_metrics=[EN,PNSR]", "train.eval_metrics names unknown metrics ['PNSR']; choose from EN"),
    ],
)
def test_bad_overrides_name_the_key_and_the_fix(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(CONFIGS / "tiny.yaml", [override])


def test_relative_data_roots_resolve_against_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (SHARED_DATA / "roadscene").is_dir():
        pytest.skip(f"shared data missing: {SHARED_DATA / 'roadscene'}")
    monkeypatch.chdir(tmp_path)  # not the repository root: `../shared/data/roadscene` is not here
    cfg = load_config(CONFIGS / "realtime.yaml")
    datasets = build_datasets(cfg.data, cfg.class_names, cfg.seg_class_names)
    count = len(datasets["fusion_train"]) + len(datasets["fusion_val"])  # type: ignore[arg-type]
    assert count == len(find_pairs(SHARED_DATA / "roadscene")) > 0


def test_section_validation_errors_become_config_errors() -> None:
    with pytest.raises(ConfigError, match="fusion_loss"):
        load_config(CONFIGS / "tiny.yaml", ["fusion_loss.w_ssim=-1"])


def test_round_trip_through_dict_and_yaml(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "realtime.yaml", ["train.seed=3"])
    assert from_dict(to_dict(cfg)) == cfg
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert from_dict({}) == ExperimentConfig()


def test_base_cycle_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_list_entries_are_overridable_by_index() -> None:
    cfg = load_config(CONFIGS / "tiny.yaml", ["data.fusion_train.0.root=/data/roadscene"])
    assert cfg.data.fusion_train[0].root == "/data/roadscene" and cfg.data.fusion_train[0].kind == "paired"
    with pytest.raises(ConfigError, match=r"data.fusion_train has 1 entries: index it with 0..0"):
        load_config(CONFIGS / "tiny.yaml", ["data.fusion_train.3.root=/x"])
