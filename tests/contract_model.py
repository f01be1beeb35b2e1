"""A tiny deterministic ONNX model of docs/model_contract.md, built with `onnx.helper` only.

Every output is predictable from the inputs, so tests anywhere can check the runtime exactly:
  fused          = max(ir broadcast to 3 channels, visible)                 uint8  N×3×H×W
  boxes          = boxes_rel[:, :4] · [W, H, W, H], zero-padded to K rows   float  N×K×4
  scores/classes = boxes_rel[:, 4] / boxes_rel[:, 5], zero-padded            N×K
  num_detections = len(boxes_rel)                                           int64  N
  segmentation   = uint8(ir > 127)                                          uint8  N×H×W
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fusion_node.pipeline.model import CONTRACT_OUTPUTS, graph_metadata

BoxRow = tuple[float, float, float, float, float, int]


def contract_metadata(
    *,
    class_names: Sequence[str],
    seg_class_names: Sequence[str],
    detection_trained: bool,
    segmentation_trained: bool,
    input_size: tuple[int, int],
    size_divisor: int,
    max_detections: int,
) -> dict[str, str]:
    """Every metadata key of the contract, as strings: the exporter caller's and the graph's."""
    return {
        "model_name": "contract_test",
        "class_names": json.dumps(list(class_names)),
        "seg_class_names": json.dumps(list(seg_class_names)),
        "detection_trained": str(detection_trained).lower(),
        "segmentation_trained": str(segmentation_trained).lower(),
        "description": "deterministic contract test model (tests/contract_model.py)",
        **graph_metadata(
            input_size=input_size,
            size_divisor=size_divisor,
            max_detections=max_detections,
            score_threshold=0.05,
            nms_iou_threshold=0.6,
        ),
    }


def make_contract_model(
    path: Path,
    *,
    class_names: Sequence[str] = ("person", "car"),
    seg_class_names: Sequence[str] = ("background", "hot"),
    detection_trained: bool = True,
    segmentation_trained: bool = True,
    input_size: tuple[int, int] = (64, 96),
    size_divisor: int = 32,
    max_detections: int = 8,
    boxes_rel: Sequence[BoxRow] = ((0.1, 0.2, 0.4, 0.6, 0.9, 1),),
    opset: int = 17,
    ir_name: str = "ir",
    ir_dtype: int = TensorProto.UINT8,
    omit_outputs: Sequence[str] = (),
    metadata: Mapping[str, str | None] | None = None,
) -> Path:
    """Write the contract model to `path` and return it.

    The last four options break the contract on purpose (for error tests): `ir_name` renames the
    IR input, `ir_dtype` changes its element type (cast to uint8 inside), `omit_outputs` drops
    outputs, `metadata` overrides keys (None deletes the key).
    """
    if len(boxes_rel) > max_detections:
        raise ValueError(f"{len(boxes_rel)} boxes do not fit max_detections={max_detections}")
    k = max_detections
    rows = np.zeros((k, 6), np.float64)
    if boxes_rel:
        rows[: len(boxes_rel)] = np.asarray(boxes_rel, np.float64)

    def const(name: str, array: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))

    ir_in = "ir_u8" if ir_dtype != TensorProto.UINT8 else ir_name
    nodes = [
        const("boxes_rel", rows[:, :4].astype(np.float32)),
        const("scores_k", rows[:, 4].astype(np.float32)),
        const("classes_k", rows[:, 5].astype(np.int64)),
        const("count", np.array([len(boxes_rel)], np.int64)),
        const("idx_n", np.array([0], np.int64)),
        const("idx_hw", np.array([2, 3, 2, 3], np.int64)),
        const("k_4", np.array([k, 4], np.int64)),
        const("k_1", np.array([k], np.int64)),
        const("thresh", np.array(127, np.uint8)),
        const("axis_c", np.array([1], np.int64)),
        # Input geometry from the graph's own input shape.
        helper.make_node("Shape", ["visible"], ["shape"]),
        helper.make_node("Gather", ["shape", "idx_n"], ["n_1"]),
        helper.make_node("Gather", ["shape", "idx_hw"], ["hwhw"]),  # H, W, H, W
        const("perm", np.array([1, 0, 3, 2], np.int64)),
        helper.make_node("Gather", ["hwhw", "perm"], ["whwh"]),
        helper.make_node("Cast", ["whwh"], ["scale"], to=TensorProto.FLOAT),
        # fused: max over the broadcast channels (int32 since Max has no uint8 kernel everywhere).
        helper.make_node("Cast", [ir_in], ["ir_i32"], to=TensorProto.INT32),
        helper.make_node("Cast", ["visible"], ["vis_i32"], to=TensorProto.INT32),
        helper.make_node("Max", ["ir_i32", "vis_i32"], ["fused_i32"]),
        helper.make_node("Cast", ["fused_i32"], ["fused"], to=TensorProto.UINT8),
        # detections: relative boxes scaled to the input, repeated over the batch.
        helper.make_node("Mul", ["boxes_rel", "scale"], ["boxes_k"]),
        helper.make_node("Concat", ["n_1", "k_4"], ["shape_nk4"], axis=0),
        helper.make_node("Expand", ["boxes_k", "shape_nk4"], ["boxes"]),
        helper.make_node("Concat", ["n_1", "k_1"], ["shape_nk"], axis=0),
        helper.make_node("Expand", ["scores_k", "shape_nk"], ["scores"]),
        helper.make_node("Expand", ["classes_k", "shape_nk"], ["classes"]),
        helper.make_node("Expand", ["count", "n_1"], ["num_detections"]),
        # segmentation: class 1 where the IR is hot.
        helper.make_node("Greater", [ir_in, "thresh"], ["hot"]),
        helper.make_node("Cast", ["hot"], ["hot_u8"], to=TensorProto.UINT8),
        helper.make_node("Squeeze", ["hot_u8", "axis_c"], ["segmentation"]),
    ]
    if ir_in != ir_name:
        nodes.insert(0, helper.make_node("Cast", [ir_name], [ir_in], to=TensorProto.UINT8))

    dims = {
        "fused": ["N", 3, "H", "W"],
        "boxes": ["N", k, 4],
        "scores": ["N", k],
        "classes": ["N", k],
        "num_detections": ["N"],
        "segmentation": ["N", "H", "W"],
    }
    outputs = [  # element types from the runtime's contract table
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dtype), dims[name])
        for name, (dtype, _rank) in CONTRACT_OUTPUTS.items()
        if name not in omit_outputs
    ]
    graph = helper.make_graph(
        nodes,
        "contract_test",
        [
            helper.make_tensor_value_info(ir_name, ir_dtype, ["N", 1, "H", "W"]),
            helper.make_tensor_value_info("visible", TensorProto.UINT8, ["N", 3, "H", "W"]),
        ],
        outputs,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 9)  # readable by older ONNX Runtime builds too
    meta: dict[str, str | None] = dict(
        contract_metadata(
            class_names=class_names,
            seg_class_names=seg_class_names,
            detection_trained=detection_trained,
            segmentation_trained=segmentation_trained,
            input_size=input_size,
            size_divisor=size_divisor,
            max_detections=max_detections,
        )
    )
    meta.update(metadata or {})
    helper.set_model_props(model, {key: value for key, value in meta.items() if value is not None})
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path
