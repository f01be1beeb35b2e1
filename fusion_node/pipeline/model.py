"""The model contract (docs/model_contract.md): metadata parsing, I/O checks, where models live."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion_node.pipeline.errors import ModelError

CONTRACT = "fusion_node/1"
# What fusion-export builds for (the networks' coarsest stride); the runtime reads each model's own
# value from its metadata.
SIZE_DIVISOR = 32
MODEL_ENV = "FUSION_NODE_MODEL"
_FIX = "re-export the model with fusion-export"

# name -> (dtype, rank), in the contract's order
CONTRACT_INPUTS: dict[str, tuple[np.dtype, int]] = {
    "ir": (np.dtype(np.uint8), 4),
    "visible": (np.dtype(np.uint8), 4),
}
CONTRACT_OUTPUTS: dict[str, tuple[np.dtype, int]] = {
    "fused": (np.dtype(np.uint8), 4),
    "boxes": (np.dtype(np.float32), 3),
    "scores": (np.dtype(np.float32), 2),
    "classes": (np.dtype(np.int64), 2),
    "num_detections": (np.dtype(np.int64), 1),
    "segmentation": (np.dtype(np.uint8), 3),
}
# metadata_props keys the exporter's caller supplies; graph_metadata() gives the rest.
CALLER_KEYS = (
    "model_name",
    "class_names",
    "seg_class_names",
    "detection_trained",
    "segmentation_trained",
    "description",
)


@dataclass(frozen=True)
class ModelInfo:
    """The model's metadata_props, parsed and checked.

    Attributes:
        input_size: (height, width) the graph expects by default.
        score_threshold, nms_iou_threshold: what the graph itself already applies.
    """

    class_names: tuple[str, ...]
    seg_class_names: tuple[str, ...]
    detection_trained: bool
    segmentation_trained: bool
    input_size: tuple[int, int]
    size_divisor: int
    max_detections: int
    score_threshold: float
    nms_iou_threshold: float
    model_name: str
    description: str

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], source: Path) -> ModelInfo:
        """Parse the string metadata of `source`; JSON values through json.loads only.

        Raises:
            ModelError: a key is missing or malformed, or the contract version differs.
        """

        def get(key: str) -> str:
            if key not in metadata:
                raise ModelError(f"{source}: metadata key {key!r} is missing; {_FIX}")
            return metadata[key]

        def bad(key: str, expected: str) -> ModelError:
            return ModelError(f"{source}: metadata {key}={metadata[key]!r} is not {expected}; {_FIX}")

        def names(key: str) -> tuple[str, ...]:
            try:
                value = json.loads(get(key))
            except json.JSONDecodeError as err:
                raise bad(key, "a JSON list of strings") from err
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad(key, "a JSON list of strings")
            return tuple(value)

        def flag(key: str) -> bool:
            value = get(key).strip().lower()
            if value not in ("true", "false"):
                raise bad(key, "'true' or 'false'")
            return value == "true"

        def number(key: str, kind: type[int] | type[float]) -> float:
            try:
                value = kind(get(key))
            except ValueError as err:
                raise bad(key, f"a positive {kind.__name__}") from err
            if not value > 0:
                raise bad(key, f"a positive {kind.__name__}")
            return value

        if get("contract") != CONTRACT:
            raise ModelError(
                f"{source}: model contract {metadata['contract']!r} is not {CONTRACT!r}; "
                f"{_FIX} from this version of fusion_node"
            )
        info = cls(
            class_names=names("class_names"),
            seg_class_names=names("seg_class_names"),
            detection_trained=flag("detection_trained"),
            segmentation_trained=flag("segmentation_trained"),
            input_size=(int(number("input_height", int)), int(number("input_width", int))),
            size_divisor=int(number("size_divisor", int)),
            max_detections=int(number("max_detections", int)),
            score_threshold=float(number("score_threshold", float)),
            nms_iou_threshold=float(number("nms_iou_threshold", float)),
            model_name=get("model_name"),
            description=metadata.get("description", ""),
        )
        if any(side % info.size_divisor for side in info.input_size):
            raise ModelError(
                f"{source}: input size {info.input_size} is not a multiple of size_divisor "
                f"{info.size_divisor}; {_FIX}"
            )
        return info


def graph_metadata(
    *,
    input_size: tuple[int, int],
    max_detections: int,
    score_threshold: float,
    nms_iou_threshold: float,
    size_divisor: int = SIZE_DIVISOR,
) -> dict[str, str]:
    """The metadata_props the exporter derives from its graph, as strings (the caller's: CALLER_KEYS)."""
    return {
        "contract": CONTRACT,
        "input_height": str(input_size[0]),
        "input_width": str(input_size[1]),
        "size_divisor": str(size_divisor),
        "max_detections": str(max_detections),
        "score_threshold": str(score_threshold),
        "nms_iou_threshold": str(nms_iou_threshold),
    }


def check_io(
    inputs: Mapping[str, tuple[np.dtype, int]], outputs: Mapping[str, tuple[np.dtype, int]], source: Path
) -> None:
    """Check a backend's tensors (name -> (dtype, rank)) against the contract.

    Raises:
        ModelError: naming every missing, mistyped or wrongly ranked tensor.
    """
    problems = []
    for kind, found, expected in (("input", inputs, CONTRACT_INPUTS), ("output", outputs, CONTRACT_OUTPUTS)):
        for name, (dtype, rank) in expected.items():
            if name not in found:
                problems.append(f"{kind} {name!r} is missing (has {sorted(found)})")
            elif found[name] != (dtype, rank):
                got_dtype, got_rank = found[name]
                problems.append(
                    f"{kind} {name!r} is {got_dtype.name} rank {got_rank}, expected {dtype.name} rank {rank}"
                )
    if problems:
        raise ModelError(
            f"{source} does not follow the model contract (docs/model_contract.md): "
            f"{'; '.join(problems)}; {_FIX}"
        )


# The default model, relative to the package (package data: setup.py ships it next to the modules) and
# to the package's ament share (data_files: share/fusion_node/models on a colcon-built robot).
DEFAULT_MODEL = Path("models", "fusion_rt.onnx")
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def default_model_path() -> Path:
    """The model to load when none is configured.

    Order: $FUSION_NODE_MODEL; the package data fusion_node/models/fusion_rt.onnx (in a checkout a
    link to models/fusion_rt.onnx), found without any ROS environment; the package's ament share,
    when $AMENT_PREFIX_PATH is set.

    Raises:
        ModelError: none of them exists; the message lists every path tried.
    """
    if env := os.environ.get(MODEL_ENV):
        candidates = [Path(env)]
    else:
        candidates = [PACKAGE_DIR / DEFAULT_MODEL]
        try:
            from ament_index_python.constants import AMENT_PREFIX_PATH_ENV_VAR
            from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        except ImportError:  # ROS-free install: the package data only
            pass
        else:
            # Without a ROS environment ament raises OSError; the package data above still applies.
            if os.environ.get(AMENT_PREFIX_PATH_ENV_VAR):
                with contextlib.suppress(PackageNotFoundError):  # not installed through colcon
                    candidates.append(Path(get_package_share_directory("fusion_node")) / DEFAULT_MODEL)
    for path in candidates:
        if path.is_file():
            return path
    raise ModelError(
        f"no model found (tried {', '.join(map(str, candidates))}); train and export one "
        f"(fusion-train, fusion-export), set the model_path parameter or ${MODEL_ENV}"
    )


def require_file(path: Path) -> Path:
    """Return `path` if it is a file, else raise ModelError with the fix."""
    if not path.is_file():
        raise ModelError(
            f"model file {path} does not exist; train and export one (fusion-train, fusion-export) "
            "or set model_path to an existing .onnx"
        )
    return path
