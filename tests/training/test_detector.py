"""The TF.js graph-model reader and the CenterNet port's contract: errors, sizes, classes, letterbox."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from training.models.centernet import (
    COCO_CLASSES,
    ROAD_CLASSES,
    CenterNet,
    coco_class_ids,
    letterbox,
    load_centernet,
)
from training.models.errors import ModelConfigError
from training.models.tfjs import PretrainedModelError, load_graph_model
from training.paths import CENTERNET

PRETRAINED = CENTERNET.parent


def write_model(folder: Path, weights: list[dict], data: bytes, nodes: list[dict] | None = None) -> Path:
    """A TF.js graph model: json (topology + one manifest group) and its one weight shard."""
    (folder / "w.bin").write_bytes(data)
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes or []},
        "weightsManifest": [{"paths": ["w.bin"], "weights": weights}],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(model))
    return path


def resize_bin(json_path: Path, change: int) -> None:
    """Cut bytes off the model's .bin (change < 0) or append zero bytes."""
    path = json_path.with_suffix(".bin")
    data = path.read_bytes()
    path.write_bytes(data[:change] if change < 0 else data + bytes(change))


@pytest.fixture
def centernet_copy(tmp_path: Path) -> Path:
    """A writable copy of the real CenterNet files."""
    if not (PRETRAINED / "centernet.json").is_file():
        pytest.skip(f"pretrained detector not found at {PRETRAINED.resolve()}")
    for name in ("centernet.json", "centernet.bin"):
        shutil.copyfile(PRETRAINED / name, tmp_path / name)
    return tmp_path / "centernet.json"


def test_reader_dequantizes_each_stored_dtype(tmp_path: Path) -> None:
    data = (
        np.array([1.5, -2.0], "<f4").tobytes()
        + np.array([0.1, 3.0, -65504.0], "<f2").tobytes()
        + np.array([0, 1, 2, 255], "u1").tobytes()
        + np.array([7, 1000], "<u2").tobytes()
        + np.array([-3, 4], "<i4").tobytes()
    )
    u8 = {"dtype": "uint8", "scale": 0.5, "min": -1.0}
    u16 = {"dtype": "uint16", "scale": 0.1, "min": 0.0}
    weights = [
        {"name": "f32", "shape": [2], "dtype": "float32"},
        {"name": "f16", "shape": [3], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "u8", "shape": [2, 2], "dtype": "float32", "quantization": u8},
        {"name": "u16", "shape": [2], "dtype": "int32", "quantization": u16},
        {"name": "i32", "shape": [2], "dtype": "int32"},
    ]
    node = {"name": "c", "op": "Conv2D", "input": ["x", "f32"], "attr": {"padding": {"s": "U0FNRQ=="}}}
    graph = load_graph_model(write_model(tmp_path, weights, data, [node]))
    np.testing.assert_array_equal(graph.weights["f32"], [1.5, -2.0])
    halves = np.array([0.1, 3.0, -65504.0], "<f2")
    np.testing.assert_array_equal(graph.weights["f16"], halves.astype(np.float32))
    np.testing.assert_array_equal(graph.weights["u8"], [[-1.0, -0.5], [0.0, 126.5]])
    assert graph.weights["u16"].dtype == np.int32 and graph.weights["u16"].tolist() == [1, 100]
    assert graph.weights["i32"].tolist() == [-3, 4]
    assert graph.nodes["c"].attrs["padding"] == "SAME" and graph.nodes["c"].inputs == ("x", "f32")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.unlink(), "model file not found"),
        (lambda p: p.with_suffix(".bin").unlink(), "weight file not found"),
        (lambda p: p.write_text("{not json"), "not a valid TF.js model json"),
        (lambda p: p.write_text('{"format": "layers-model"}'), "not a TF.js graph model"),
        (lambda p: resize_bin(p, -100), "truncated"),
        (lambda p: resize_bin(p, +1), "belongs to another"),
    ],
    ids=["missing json", "missing bin", "corrupt json", "not a graph model", "truncated bin", "bin too long"],
)
def test_broken_weight_files_are_one_clear_error(centernet_copy: Path, damage, message: str) -> None:
    damage(centernet_copy)
    with pytest.raises(PretrainedModelError, match=message) as err:
        load_centernet(centernet_copy)
    assert str(centernet_copy.parent) in str(err.value)
    assert isinstance(err.value, ModelConfigError)  # caught where network config errors are


def test_a_graph_differing_from_the_port_is_refused(centernet_copy: Path) -> None:
    model = json.loads(centernet_copy.read_text())
    name = "tower_0/MobilenetV3/expanded_conv_1/depthwise/depthwise"
    node = next(n for n in model["modelTopology"]["node"] if n["name"] == name)
    node["attr"]["strides"]["list"]["i"] = ["1", "1", "1", "1"]
    centernet_copy.write_text(json.dumps(model))
    with pytest.raises(PretrainedModelError, match=r"expanded_conv_1/depthwise/depthwise.*strides"):
        load_centernet(centernet_copy)
    with pytest.raises(PretrainedModelError, match="not the CenterNet graph"):
        load_centernet(PRETRAINED / "nanodet.json")  # the package's other detector


@pytest.mark.parametrize("size", [(500, 512), (512, 0), (320, 330)])
def test_input_size_must_be_a_multiple_of_32(size: tuple[int, int]) -> None:
    with pytest.raises(PretrainedModelError, match="multiples of 32"):
        CenterNet()(torch.zeros(1, 3, *size))


def test_unknown_class_names_are_refused() -> None:
    with pytest.raises(PretrainedModelError, match=r"unknown \['lamp'\].*person"):
        CenterNet(["person", "lamp"])
    with pytest.raises(PretrainedModelError, match="unknown"):
        coco_class_ids([])
    assert coco_class_ids(["Person", " truck"]) == [0, 7]
    assert [COCO_CLASSES[i] for i in coco_class_ids(ROAD_CLASSES)] == list(ROAD_CLASSES)


@pytest.mark.parametrize("size", [320, 416])
def test_other_input_sizes_give_stride_4_outputs(size: int) -> None:
    out = CenterNet(ROAD_CLASSES, top_k=20).eval()(torch.rand(2, 3, size, size) * 255)
    assert out.keypoints.shape == (2, len(ROAD_CLASSES), size // 4, size // 4)
    assert out.wh.shape == (2, 4, size // 4, size // 4)
    assert out.detections.shape == (2, 20, 6)
    assert bool((out.detections[..., 4].diff(dim=1) <= 0).all())  # sorted by score


def test_letterbox_keeps_aspect_and_maps_boxes_back() -> None:
    image = np.full((480, 640, 3), 200, np.uint8)
    boxed, where = letterbox(image, 320)
    assert boxed.shape == (320, 320, 3) and where.scale == 0.5 and (where.dx, where.dy) == (0, 40)
    assert (boxed[:40] == 0).all() and (boxed[40:280] == 200).all() and (boxed[280:] == 0).all()
    np.testing.assert_allclose(where.to_image(np.array([[0, 40, 320, 280]], np.float32)), [[0, 0, 640, 480]])
    with pytest.raises(PretrainedModelError, match="multiples of 32"):
        letterbox(image, 300)
