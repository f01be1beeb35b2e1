"""Experiment configuration: YAML file (with `base:` inheritance) → dataclass defaults → overrides.

Every number a run uses lives here. Each section is the dataclass its subsystem defines; this module
only composes them, loads YAML, applies `key.sub=value` overrides and type-checks the result.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from training.bilevel import BilevelConfig
from training.data import DataConfig
from training.losses import FusionLossConfig, GanLossConfig, SemanticLossConfig
from training.metrics.fusion import METRICS
from training.models.discriminator import DiscriminatorConfig
from training.models.fusion import FusionNetConfig
from training.models.semantic import SemanticNetConfig
from training.tasks import DetectionTaskConfig, LabelledConfig, SegmentationTaskConfig

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or override is malformed; the message names the key and the fix."""


@dataclass
class OptimConfig:
    """AdamW for each net, one shared schedule shape (cosine with warmup, or step)."""

    fusion_lr: float = 1e-3
    discriminator_lr: float = 1e-4
    semantic_lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["cosine", "step"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.05  # cosine floor as a fraction of the base lr
    step_size: int = 10000  # "step": multiply the lr by step_gamma every step_size steps
    step_gamma: float = 0.5
    clip_grad_norm: float | None = 1.0


@dataclass
class TrainConfig:
    """Loop length, batch geometry, intervals, output folder and run-time switches."""

    max_steps: int = 20000
    batch_size: int = 8
    eval_interval: int = 1000
    eval_images: int = 4  # val pairs fused and scored at each evaluation
    # Fast metrics only (VIF is the slow one); fusion-eval computes all of them on TNO.
    eval_metrics: list[str] = field(
        default_factory=lambda: ["EN", "SD", "SF", "AG", "MI", "SCD", "Qabf", "SSIM"]
    )
    ckpt_interval: int = 2000
    log_interval: int = 50
    out_dir: str = "runs/default"
    # A checkpoint whose fusion weights start this run (fine-tuning; e.g. the shipped model's, read
    # back by scripts/checkpoint_from_onnx.py); None = random initialisation.
    init_from: str | None = None
    seed: int = 0
    deterministic: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # bfloat16 autocast of the forward passes, on CUDA and on CPU alike
    num_workers: int = 4

    def __post_init__(self) -> None:
        unknown = [name for name in self.eval_metrics if name not in METRICS]
        if unknown:
            raise ConfigError(
                f"train.eval_metrics names unknown metrics {unknown}; choose from {', '.join(METRICS)}"
            )


@dataclass
class ExperimentConfig:
    """One run: every section the trainer, the export and the evaluation read."""

    fusion_net: FusionNetConfig = field(default_factory=FusionNetConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    semantic_net: SemanticNetConfig = field(default_factory=SemanticNetConfig)
    fusion_loss: FusionLossConfig = field(default_factory=FusionLossConfig)
    gan_loss: GanLossConfig = field(default_factory=GanLossConfig)
    semantic_loss: SemanticLossConfig = field(default_factory=SemanticLossConfig)
    bilevel: BilevelConfig = field(default_factory=BilevelConfig)
    detection: DetectionTaskConfig = field(default_factory=DetectionTaskConfig)
    segmentation: SegmentationTaskConfig = field(default_factory=SegmentationTaskConfig)
    labelled: LabelledConfig = field(default_factory=LabelledConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    class_names: list[str] = field(
        default_factory=lambda: ["people", "car", "bus", "motorcycle", "lamp", "truck"]
    )
    seg_class_names: list[str] = field(
        default_factory=lambda: [
            "unlabelled",
            "car",
            "person",
            "bike",
            "curve",
            "car_stop",
            "guardrail",
            "color_cone",
            "bump",
        ]
    )

    def __post_init__(self) -> None:
        # The semantic net's head sizes must follow the class lists the labels are mapped onto.
        sem = self.semantic_net
        if sem.num_classes != len(self.class_names) or sem.num_seg_classes != len(self.seg_class_names):
            raise ConfigError(
                f"semantic_net.num_classes={sem.num_classes} / num_seg_classes={sem.num_seg_classes} "
                f"must equal len(class_names)={len(self.class_names)} / "
                f"len(seg_class_names)={len(self.seg_class_names)}: set them to match"
            )


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML experiment file, resolve `base:` chains, apply `a.b=value` overrides.

    Override values are parsed as YAML (`train.max_steps=10`, `class_names=[car,person]`,
    `optim.clip_grad_norm=null`) and then typed by the dataclass fields like file values.

    Raises:
        ConfigError: unreadable file, `base:` cycle, unknown key or a value of the wrong type.
    """
    return from_dict(_read_yaml(Path(path), ()), overrides)


def from_dict(raw: dict[str, Any], overrides: list[str] | None = None) -> ExperimentConfig:
    """Build and type-check an ExperimentConfig from a plain dict (e.g. a checkpoint's config)."""
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        _set_path(raw, key.strip().split("."), yaml.safe_load(text))
    return typing.cast(ExperimentConfig, _build(ExperimentConfig, raw, ""))


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain dicts/lists/scalars (YAML- and `weights_only`-safe)."""
    return typing.cast(dict[str, Any], _plain(dataclasses.asdict(cfg)))


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (the run folder's config.yaml)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _read_yaml(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"`base:` cycle through {path}; remove one of the base references")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of sections, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    return _merge(_read_yaml(path.parent / str(base), (*chain, path)), data)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        old = out.get(key)
        out[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


def _set_path(raw: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set raw[k0][k1]...= value, creating mappings; a numeric key indexes an existing list
    (`data.fusion_train.0.root=/data/roadscene`)."""
    node: Any = raw
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                path = ".".join(keys[:depth])
                raise ConfigError(
                    f"{path} has {len(node)} entries: index it with 0..{len(node) - 1}, not {key!r}"
                )
            if last:
                node[int(key)] = value
            node = node[int(key)]
        elif last:
            node[key] = value
        else:
            if not isinstance(node.get(key), (dict, list)):
                node[key] = {}
            node = node[key]


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown config key {_join(where, unknown[0])!r}; valid keys"
            f"{' in ' + where if where else ''}: {', '.join(names)}"
        )
    kwargs = {name: _coerce(raw[name], hints[name], _join(where, name)) for name in names if name in raw}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # each section's own validation (DataError, LossError, ...)
        raise ConfigError(f"{where or 'config'}: {err}") from err


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert one value against its field type (the subset of types our configs use)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(typing.cast(type, tp), value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError("; ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}={value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            items = [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else list(value)
        else:
            if len(value) != len(args):
                raise ConfigError(f"{key} must have {len(args)} items, got {value!r}")
            items = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return {k: _coerce(v, args[1], f"{key}.{k}") if args else v for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        # PyYAML reads `1e-3` (no dot) as a string: accept numeric strings for float fields.
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{key} must be a number, got {value!r}") from err
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def build_section(cls: type[T], raw: dict[str, Any], where: str = "") -> T:
    """A config dataclass other than ExperimentConfig (e.g. the segmentation head's) from a plain
    dict, typed and checked like the experiment's sections."""
    return typing.cast(T, _build(cls, raw, where))
