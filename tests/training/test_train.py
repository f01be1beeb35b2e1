"""fusion-train end to end on real RoadScene pairs: artifacts, learning, exact resume, CLI errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.checkpoint import load_checkpoint
from training.config import OptimConfig, from_dict, load_config
from training.train import CKPT_NAME, TrainResult, lr_factor, main, train

TINY = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny.yaml"


def _overrides(data_dir: Path, out_dir: Path, *extra: str) -> list[str]:
    root = (data_dir / "roadscene").resolve()
    return [
        f"data.fusion_train=[{{kind: paired, root: {root}}}]",
        f"train.out_dir={out_dir}",
        "train.eval_images=1",
        *extra,
    ]


@pytest.fixture(scope="module")
def tiny_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainResult]:
    out = tmp_path_factory.mktemp("tiny")
    cfg = load_config(
        TINY,
        _overrides(
            data_dir,
            out,
            "train.max_steps=20",
            "train.eval_interval=10",
            "train.ckpt_interval=10",
            "train.log_interval=5",
        ),
    )
    return out, train(cfg)


def test_run_writes_checkpoint_config_and_events(tiny_run: tuple[Path, TrainResult]) -> None:
    out, _ = tiny_run
    ckpt = torch.load(out / CKPT_NAME, weights_only=True)
    assert ckpt["step"] == 20
    assert (
        set(ckpt["models"]) == {"fusion", "discriminator", "semantic", "detector", "seg_head"}
        and ckpt["models"]["semantic"] is None
    )
    assert ckpt["trained"] == {"detection": False, "segmentation": False}  # RoadScene has no labels
    assert ckpt["class_names"] == load_config(TINY).class_names
    assert ckpt["metrics"]["eval/EN"] > 0
    assert load_config(out / "config.yaml") == from_dict(ckpt["config"])
    assert from_dict(ckpt["config"]).train.max_steps == 20
    assert list(out.glob("events.out.tfevents.*"))
    assert not list(out.glob(".*.tmp"))


def test_fusion_loss_goes_down(tiny_run: tuple[Path, TrainResult]) -> None:
    losses = [h["fusion/total"] for h in tiny_run[1].history]
    assert len(losses) == 20
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_bilevel_terms_are_logged(tiny_run: tuple[Path, TrainResult]) -> None:
    logs = tiny_run[1].history[-1]
    for key in (
        "fusion/total",
        "discriminator/lower/total",
        "discriminator/weight",
        "grad_norm",
        "lr/fusion",
    ):
        assert key in logs


def test_resume_continues_exactly(data_dir: Path, tmp_path: Path) -> None:
    # Both tasks (D on RoadScene, S on the M3FD pairs) with the random rule, so the aggregator's
    # generator, both task streams and all three nets/optimisers must be restored. Constant lr
    # (min_lr_ratio=1) so the half run's schedule does not depend on max_steps. M3FD gives 4 batches
    # per epoch: the resumed half crosses an epoch boundary.
    m3fd = (data_dir / "m3fd").resolve()
    common = (
        "train.deterministic=true",
        "optim.min_lr_ratio=1.0",
        "train.eval_interval=1000",
        "train.num_workers=1",  # batches come from a worker process: positions must still line up
        "bilevel.aggregation=random",
        "data.crop_size=[48, 48]",
        "train.batch_size=2",
        f"data.semantic_train=[{{kind: m3fd, root: {m3fd}, split: train}}]",
        "semantic_net.width=8",
        "semantic_net.max_width=16",
        "semantic_net.neck_width=16",
        "semantic_net.seg_width=8",
    )
    straight = train(load_config(TINY, _overrides(data_dir, tmp_path / "a", "train.max_steps=6", *common)))
    assert (
        main(["--config", str(TINY), *_overrides(data_dir, tmp_path / "b", "train.max_steps=3", *common)])
        == 0
    )
    assert load_checkpoint(tmp_path / "b" / CKPT_NAME)["step"] == 3
    assert main(["--resume", str(tmp_path / "b" / CKPT_NAME), "train.max_steps=6"]) == 0
    resumed = load_checkpoint(tmp_path / "b" / CKPT_NAME)
    assert resumed["step"] == 6
    assert resumed["trained"] == {"detection": True, "segmentation": False}  # M3FD: boxes, no masks
    for name in ("fusion", "discriminator", "semantic"):
        net = straight.models[name]
        assert net is not None
        for key, value in net.state_dict().items():
            assert torch.equal(value, resumed["models"][name][key]), f"{name}.{key} differs after resume"


def test_cli_errors_exit_1_with_a_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--config", str(TINY), "train.max_stepz=3"]) == 1
    assert "ERROR: unknown config key 'train.max_stepz'" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "nope.pt")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_summary_prints_each_net(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(TINY), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "fusion (realtime)" in out and "discriminator" in out


def test_lr_schedule_warms_up_then_decays() -> None:
    oc = OptimConfig(warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, oc=oc, max_steps=110) == pytest.approx(0.1)
    assert lr_factor(10, oc=oc, max_steps=110) == pytest.approx(1.0)
    assert lr_factor(110, oc=oc, max_steps=110) == pytest.approx(0.1)
    step = OptimConfig(schedule="step", step_size=5, step_gamma=0.5)
    assert lr_factor(12, oc=step, max_steps=100) == pytest.approx(0.25)
