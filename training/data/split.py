"""The fixed train / evaluation split of the labelled IR/visible pairs, never mixed.

``training/configs/data/labelled_split.yaml`` is the one place that says which labelled pair is for
training and which for evaluation. Its users: the detection-driven bi-level training
(``training_set``: the training part only), ``fusion-eval --task detection`` (``evaluation_pairs``:
the evaluation part only) and the box-supervised segmentation head (training/seg_config.py adds
these datasets to its own). Labels index ROAD_CLASSES (the detector's classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import yaml
from torch.utils.data import ConcatDataset, Dataset, Subset

from training.data.config import DataConfig, DatasetSpec, open_dataset
from training.data.datasets import PairDataset, Transform
from training.data.errors import DataError
from training.data.sample import Pair
from training.models.centernet import ROAD_CLASSES
from training.models.seg_classes import ROAD_NAME_MAP
from training.paths import REPO_ROOT

SPLIT_FILE = REPO_ROOT / "training" / "configs" / "data" / "labelled_split.yaml"
Role = Literal["train", "eval"]


@dataclass
class SegDatasetSpec(DatasetSpec):
    """A named dataset: `name` names its box cache file; `eval_names` (or `role: eval` for all of
    it) are held out for evaluation and never trained on."""

    name: str = ""
    role: str = "train"
    eval_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.name or self.role not in ("train", "eval"):
            raise DataError(f"segmentation dataset {self.root}: set a `name` and role train|eval, got {self}")

    @property
    def labelled(self) -> bool:
        """Ground-truth boxes (else the detector's)."""
        return self.kind != "paired"

    def is_eval(self, pair: str) -> bool:
        return self.role == "eval" or pair in self.eval_names


def open_labelled(spec: DatasetSpec, transform: Transform | None = None) -> PairDataset:
    """The spec's pairs, labels as indices into ROAD_CLASSES (M3FD "People" → person, "Lamp" dropped)."""
    return open_dataset(spec, ROAD_CLASSES, DataConfig(name_map=dict(ROAD_NAME_MAP)), None, transform)


@cache
def labelled_specs() -> tuple[SegDatasetSpec, ...]:
    """The labelled datasets of the split file, each with its evaluation part marked."""
    try:
        raw: Any = yaml.safe_load(SPLIT_FILE.read_text())
        specs = tuple(SegDatasetSpec(**entry) for entry in raw["datasets"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise DataError(
            f"the labelled split {SPLIT_FILE} is unreadable ({err!r}): restore it from git"
        ) from err
    if not all(spec.labelled for spec in specs):
        raise DataError(f"{SPLIT_FILE} lists an unlabelled dataset: only GT-box datasets belong there")
    return specs


def split_indices(spec: SegDatasetSpec, dataset: PairDataset, role: Role) -> list[int]:
    """Indices of ``dataset``'s pairs in the ``role`` part; every ``eval_names`` entry must exist."""
    missing = set(spec.eval_names) - set(dataset.names)
    if missing:
        raise DataError(f"{spec.name}: eval_names {sorted(missing)} are not in the dataset ({SPLIT_FILE})")
    return [i for i, name in enumerate(dataset.names) if spec.is_eval(name) == (role == "eval")]


def training_set(transform: Transform) -> Dataset[Any]:
    """The training part of every labelled dataset, as samples through ``transform``."""
    parts: list[Dataset[Any]] = []
    for spec in labelled_specs():
        dataset = open_labelled(spec, transform)
        index = split_indices(spec, dataset, "train")
        if index:
            parts.append(Subset(dataset, index))
    if not parts:
        raise DataError(f"{SPLIT_FILE} leaves no training pair: mark fewer pairs for evaluation")
    return ConcatDataset(parts)


def evaluation_split() -> list[tuple[SegDatasetSpec, Pair]]:
    """The evaluation part: (its dataset, the untransformed pair) in the split file's order."""
    out = []
    for spec in labelled_specs():
        dataset = open_labelled(spec)
        out += [(spec, dataset.load(i)) for i in split_indices(spec, dataset, "eval")]
    return out
