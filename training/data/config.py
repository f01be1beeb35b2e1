"""`DataConfig` (the YAML `data` section) and `build_datasets`, which turns it into torch datasets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, cast

import numpy as np
from torch.utils.data import ConcatDataset, Dataset, Subset

from fusion_node.pipeline.pair_files import ImagePair
from training.data.datasets import (
    LLVIPDataset,
    M3FDDataset,
    MSRSDataset,
    PairDataset,
    PairedFolderDataset,
    Transform,
)
from training.data.errors import DataError
from training.data.transforms import EvalTransform, Photometric, TrainTransform
from training.paths import data_path

KINDS = ("paired", "msrs", "m3fd", "llvip")


@dataclass
class DatasetSpec:
    """One dataset on disk. `kind` is paired | msrs | m3fd | llvip.

    `root` and `labels_dir` are absolute or relative to the repository root (`../shared/data/...`).
    `split` selects MSRS/LLVIP folders and the M3FD COCO-JSON file (omit it for M3FD's official
    layout); `ir_dir`/`vi_dir` apply to `paired`; `labels_dir` holds MSRS YOLO detection labels.
    """

    kind: str
    root: str
    split: str | None = None
    ir_dir: str = "ir"
    vi_dir: str = "vi"
    labels_dir: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"dataset kind {self.kind!r} is unknown: use one of {', '.join(KINDS)}")


@dataclass
class DataConfig:
    """Which datasets feed each phase, how validation is split off, and the augmentation strengths.

    An empty `*_val` list splits validation off the matching `*_train` datasets: `val_names` when
    given, else `val_fraction` of the pairs by a permutation seeded with `split_seed`. Names in
    `exclude_names` are used nowhere. Sizes are (height, width). `cache_mb` bounds the decoded
    uint8 training images kept in memory (training/data/cache.py; 0 = decode every sample).
    """

    fusion_train: list[DatasetSpec] = field(default_factory=list)
    fusion_val: list[DatasetSpec] = field(default_factory=list)
    semantic_train: list[DatasetSpec] = field(default_factory=list)
    semantic_val: list[DatasetSpec] = field(default_factory=list)
    val_fraction: float = 0.1
    val_names: list[str] = field(default_factory=list)
    exclude_names: list[str] = field(default_factory=list)
    split_seed: int = 0
    crop_size: tuple[int, int] = (256, 256)
    scale_range: tuple[float, float] = (0.75, 1.25)
    flip_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    gamma: float = 0.2
    blur_prob: float = 0.1
    blur_sigma: float = 1.0
    noise_std: float = 0.01
    min_box_visible: float = 0.3
    min_box_size: float = 2.0
    eval_size: tuple[int, int] | None = (480, 640)
    name_map: dict[str, str] = field(default_factory=dict)
    allow_eval_data: bool = False
    cache_mb: int = 2048

    def __post_init__(self) -> None:
        # YAML gives lists and dicts: coerce them so `DataConfig(**yaml_section)` just works.
        for group in ("fusion_train", "fusion_val", "semantic_train", "semantic_val"):
            setattr(
                self, group, [s if isinstance(s, DatasetSpec) else _spec(s) for s in getattr(self, group)]
            )
        self.crop_size = _pair_of(self.crop_size, int, "crop_size")
        self.scale_range = _pair_of(self.scale_range, float, "scale_range")
        self.eval_size = None if self.eval_size is None else _pair_of(self.eval_size, int, "eval_size")
        if not 0 <= self.val_fraction < 1:
            raise DataError(f"val_fraction {self.val_fraction} must be in [0, 1)")
        if self.cache_mb < 0:
            raise DataError(f"cache_mb {self.cache_mb} must be >= 0 (0 turns the in-memory cache off)")

    def train_transform(self) -> TrainTransform:
        photometric = Photometric(
            self.brightness,
            self.contrast,
            self.saturation,
            self.gamma,
            self.blur_prob,
            self.blur_sigma,
            self.noise_std,
        )
        return TrainTransform(
            self.crop_size,
            self.scale_range,
            self.flip_prob,
            photometric,
            self.min_box_visible,
            self.min_box_size,
        )

    def eval_transform(self) -> EvalTransform:
        return EvalTransform(self.eval_size)


def _spec(value: Any) -> DatasetSpec:
    if not isinstance(value, dict):
        raise DataError(f"dataset entry {value!r} must be a mapping with kind and root")
    unknown = set(value) - {f.name for f in fields(DatasetSpec)}
    if unknown:
        raise DataError(f"dataset entry {value!r} has unknown keys {sorted(unknown)}")
    return DatasetSpec(**value)


def _pair_of(value: Any, kind: type, name: str) -> Any:
    if not isinstance(value, Sequence) or len(value) != 2:
        raise DataError(f"{name} must be two numbers (height, width or low, high), got {value!r}")
    return (kind(value[0]), kind(value[1]))


def open_dataset(
    spec: DatasetSpec,
    class_names: Sequence[str] | None,
    cfg: DataConfig,
    num_seg_classes: int | None,
    transform: Transform | None,
) -> PairDataset:
    """The dataset a spec names; `class_names=None` skips its detection labels."""
    root = data_path(spec.root)
    if spec.kind == "paired":
        return PairedFolderDataset(root, spec.ir_dir, spec.vi_dir, transform=transform)
    names, name_map = class_names, cfg.name_map
    if spec.kind == "msrs":
        return MSRSDataset(
            root,
            spec.split,
            class_names=names,
            name_map=name_map,
            labels_dir=None if spec.labels_dir is None else data_path(spec.labels_dir),
            num_seg_classes=num_seg_classes,
            transform=transform,
        )
    if spec.kind == "m3fd":
        return M3FDDataset(root, spec.split, class_names=names, name_map=name_map, transform=transform)
    return LLVIPDataset(root, spec.split, class_names=names, name_map=name_map, transform=transform)


def _concat(
    specs: list[DatasetSpec],
    transform: Transform,
    cfg: DataConfig,
    class_names: Sequence[str] | None,
    num_seg_classes: int | None,
) -> tuple[Dataset[Any], list[str]]:
    parts = [open_dataset(s, class_names, cfg, num_seg_classes, transform) for s in specs]
    names = [n for p in parts for n in p.names]
    return (parts[0] if len(parts) == 1 else ConcatDataset(parts)), names


def _split(names: list[str], cfg: DataConfig) -> tuple[list[int], list[int]]:
    """(train indices, val indices) of a name list, excluded names removed from both."""
    excluded = set(cfg.exclude_names)
    usable = [i for i, n in enumerate(names) if n not in excluded]
    if cfg.val_names:
        # One list may name pairs of both phases, so only a list matching nothing here is an error.
        wanted = set(cfg.val_names)
        val = [i for i in usable if names[i] in wanted]
        if not val:
            raise DataError(f"none of val_names {cfg.val_names[:5]} is in {names[:3]}...: fix data.val_names")
    else:
        order = np.random.default_rng(cfg.split_seed).permutation(sorted({names[i] for i in usable}))
        chosen = set(order[: math.ceil(cfg.val_fraction * len(order))].tolist())
        val = [i for i in usable if names[i] in chosen]
    val_set = set(val)
    train = [i for i in usable if i not in val_set]
    if not train:
        raise DataError("no training pairs are left after the validation split: lower val_fraction")
    return train, val


def _check_not_eval_data(specs: list[DatasetSpec], cfg: DataConfig) -> None:
    for spec in specs:
        if not cfg.allow_eval_data and "tno" in (p.lower() for p in data_path(spec.root).resolve().parts):
            raise DataError(
                f"fusion training root {spec.root} is under tno/, the evaluation benchmark: "
                "train on another set, or set data.allow_eval_data: true on purpose"
            )


def _phase(
    train_specs: list[DatasetSpec],
    val_specs: list[DatasetSpec],
    cfg: DataConfig,
    class_names: Sequence[str] | None,
    num_seg_classes: int | None,
) -> tuple[Dataset[Any], Dataset[Any]]:
    """(train, val) datasets of one phase; val is split off train when no val datasets are given."""
    train_set, names = _concat(train_specs, cfg.train_transform(), cfg, class_names, num_seg_classes)
    if val_specs:
        excluded = set(cfg.exclude_names)
        val_set, val_names = _concat(val_specs, cfg.eval_transform(), cfg, class_names, num_seg_classes)
        keep_train = [i for i, n in enumerate(names) if n not in excluded]
        keep_val = [i for i, n in enumerate(val_names) if n not in excluded]
        return Subset(train_set, keep_train), Subset(val_set, keep_val)
    eval_set, _ = _concat(train_specs, cfg.eval_transform(), cfg, class_names, num_seg_classes)
    train_idx, val_idx = _split(names, cfg)
    return Subset(train_set, train_idx), Subset(eval_set, val_idx)


def _require_fusion_train(cfg: DataConfig) -> None:
    if not cfg.fusion_train:
        raise DataError("data.fusion_train lists no dataset: add at least one (e.g. kind: paired)")


def fusion_val_pairs(cfg: DataConfig) -> list[ImagePair]:
    """The files of the fusion validation pairs the trainer scores with `cfg`, in its order.

    fusion-eval --val-of scores exported models on exactly these (at each pair's own size).
    """
    _require_fusion_train(cfg)
    # _phase gives a Subset of one PairDataset or of their ConcatDataset: the trainer's split itself.
    val = cast(Subset[Any], _phase(cfg.fusion_train, cfg.fusion_val, cfg, None, None)[1])
    whole = val.dataset
    parts = cast(list[PairDataset], whole.datasets if isinstance(whole, ConcatDataset) else [whole])
    entries = [e for part in parts for e in part.entries]
    return [ImagePair(entries[i].name, entries[i].ir, entries[i].vi) for i in val.indices]


def build_datasets(
    cfg: DataConfig, class_names: Sequence[str], seg_class_names: Sequence[str]
) -> dict[str, Dataset[Any]]:
    """Datasets by role: "fusion_train", "fusion_val" and, when labelled data is configured,
    "semantic_train", "semantic_val". Train sets augment; val sets only resize to `eval_size`.
    """
    _require_fusion_train(cfg)
    _check_not_eval_data(cfg.fusion_train, cfg)
    datasets: dict[str, Dataset[Any]] = {}
    # Fusion needs images only: labels are not parsed for it.
    datasets["fusion_train"], datasets["fusion_val"] = _phase(
        cfg.fusion_train, cfg.fusion_val, cfg, None, None
    )
    if cfg.semantic_train:
        datasets["semantic_train"], datasets["semantic_val"] = _phase(
            cfg.semantic_train, cfg.semantic_val, cfg, class_names, len(seg_class_names)
        )
    elif cfg.semantic_val:
        raise DataError("data.semantic_val is set but data.semantic_train is empty: add the training set")
    return datasets
