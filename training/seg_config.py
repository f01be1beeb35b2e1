"""Configuration of the box-supervised segmentation head (``DEFAULT_CONFIG``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from training.config import ConfigError, build_section
from training.data.boxcache import DetectorSettings
from training.data.split import SegDatasetSpec, labelled_specs
from training.losses.boxseg import BoxSegLossConfig
from training.models.seghead import SegHeadConfig
from training.paths import REPO_ROOT

DEFAULT_CONFIG = REPO_ROOT / "training" / "configs" / "segmentation" / "boxseg.yaml"


@dataclass
class SegTrainConfig:
    """The head's training run: input image, steps, optimiser, input size, output folder.

    ``fused`` trains on what the exported graph's detector will see (the fusion net's output);
    ``visible`` needs no fusion model.
    """

    image: Literal["fused", "visible"] = "fused"  # what the detector (and the affinity) sees
    fusion_model: str = "models/fusion_rt.onnx"  # makes the fused image, through FusionPipeline
    steps: int = 300
    batch_size: int = 4
    lr: float = 1e-2
    weight_decay: float = 1e-4
    long_side: int = 384  # detector input for the head: long side, both sides multiples of 32
    seed: int = 0
    threads: int = 2
    out_dir: str = "runs/boxseg"
    log_interval: int = 25


@dataclass
class SegConfig:
    """Datasets, detector box settings, head, loss, run.

    ``datasets`` are the config's own (unlabelled pairs, for detector boxes); the labelled pairs of
    the fixed split (training/data/split.py) are added to them, their evaluation part held out.
    """

    datasets: list[SegDatasetSpec] = field(default_factory=list)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    head: SegHeadConfig = field(default_factory=SegHeadConfig)
    loss: BoxSegLossConfig = field(default_factory=BoxSegLossConfig)
    train: SegTrainConfig = field(default_factory=SegTrainConfig)

    def __post_init__(self) -> None:
        own = {d.name for d in self.datasets}
        self.datasets = [*self.datasets, *(d for d in labelled_specs() if d.name not in own)]
        names = [d.name for d in self.datasets]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"boxseg datasets need unique names (their cache files), got {names}")


def load_seg_config(path: str | Path) -> SegConfig:
    """The YAML file as a checked SegConfig."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read segmentation config {path}: {err}") from err
    return build_section(SegConfig, raw)
