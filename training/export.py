"""ONNX export of the inference graph (uint8 IR + BGR in; fused image, detections, segmentation out).

The graph (training/models/inference.py) is fusion → the pretrained CenterNet on the fused image
(+ a trained segmentation head: the box-supervised SegHead on the detector's feature, ``--seg-head``);
it and its metadata follow docs/model_contract.md. Steps
(timm utils/onnx.py, ultralytics exporter): dry run, ``torch.onnx.export`` (TorchScript exporter)
with named dynamic axes, the detector's weights stored as float16 (as the pretrained file has
them: exact), ``onnx.checker`` full check, metadata_props, ONNX Runtime parity against PyTorch.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from torch import nn

from fusion_node.pipeline import ModelError, ModelInfo, PipelineError
from fusion_node.pipeline.model import (
    CALLER_KEYS,
    CONTRACT_INPUTS,
    CONTRACT_OUTPUTS,
    SIZE_DIVISOR,
    graph_metadata,
)
from fusion_node.pipeline.pair_files import find_pairs, read_pair
from training.models.centernet import ROAD_CLASSES, TOP_K, CenterNet
from training.models.errors import ModelConfigError
from training.models.fusion import FusionNetConfig, build_fusion_net
from training.models.inference import FusedImageDetector, InferenceGraph, detector_input_size
from training.models.seg_classes import SEG_CLASSES
from training.models.seghead import SegHead, SegHeadConfig, load_seg_head
from training.models.semantic import SemanticNet, SemanticNetConfig
from training.paths import CENTERNET, REPO_ROOT, TNO

INPUTS, OUTPUTS = list(CONTRACT_INPUTS), list(CONTRACT_OUTPUTS)  # the runtime's contract, in its order
INPUT_SIZE = (480, 640)  # (height, width) the graph's metadata names as default
DETECTOR_SIZE = 512  # the detector input's longer side (upstream trained and evaluated at 512²)
OPSET = 17
MAX_DETECTIONS = TOP_K
# The graph's own filter: permissive, the runtime applies its stricter threshold on top.
SCORE_THRESHOLD = 0.05
# The graph does no IoU NMS (CenterNet's max-pool peaks are its NMS): IoU > 1 suppresses nothing.
NMS_IOU_THRESHOLD = 1.0
MIN_SEG_AGREEMENT = 0.999
# Keys the graph itself decides, so they cannot disagree with it (the caller gives the others).
_GRAPH_KEYS = ("class_names", "detection_trained", "segmentation_trained")
# The description's note of the segmentation output; the contract has no key for what a SegHead
# learned from, so the description names it.
SEG_HEAD_NOTE = (
    "segmentation: SegHead on the detector's stride-4 feature, trained with box supervision "
    "(boxes, not masks; docs/segmentation.md)"
)
SEMANTIC_NOTE = "segmentation: the checkpoint's trained semantic net"
NO_SEG_NOTE = "segmentation: NOT trained (outputs zeros)"
Frame = tuple[np.ndarray, np.ndarray]  # (ir uint8 H×W, visible uint8 H×W×3 BGR)


class ExportError(RuntimeError):
    """The export cannot produce a model that honours the contract (message says what and how to fix)."""


def _metadata(
    graph: InferenceGraph, caller: dict[str, str], input_size: tuple[int, int], out_path: Path
) -> dict[str, str]:
    """The caller's keys plus the graph's, checked by the runtime's own parser before export."""
    required = [k for k in CALLER_KEYS if k not in _GRAPH_KEYS]
    missing = [k for k in required if k not in caller]
    extra = [k for k in _GRAPH_KEYS if k in caller]
    if missing or extra:
        raise ExportError(
            f"metadata lacks {missing} / sets {extra}: pass exactly {required} "
            f"(the graph sets {list(_GRAPH_KEYS)})"
        )
    seg_head = isinstance(graph.segmenter, SegHead)
    seg_note = SEG_HEAD_NOTE if seg_head else NO_SEG_NOTE if graph.segmenter is None else SEMANTIC_NOTE
    if seg_head and json.loads(caller["seg_class_names"]) != list(SEG_CLASSES):
        raise ExportError(f"a SegHead predicts SEG_CLASSES: pass seg_class_names {json.dumps(SEG_CLASSES)}")
    detector = graph.detector.detector
    det_h, det_w = graph.detector.size
    props = {
        **caller,
        "description": (
            f"{caller['description']}; detector: pretrained COCO CenterNet-MobileNetV3 (frozen, "
            f"docs/detector.md) on the fused image at {det_h}×{det_w}; {seg_note}"
        ),
        "class_names": json.dumps(list(detector.classes)),
        "detection_trained": "true",  # pretrained: docs/detector.md
        "segmentation_trained": json.dumps(graph.segmenter is not None),
        **graph_metadata(
            input_size=input_size,
            max_detections=detector.top_k,
            score_threshold=graph.detector.score_threshold,
            nms_iou_threshold=NMS_IOU_THRESHOLD,
        ),
    }
    try:
        ModelInfo.from_metadata(props, out_path)
    except ModelError as err:
        raise ExportError(f"the runtime would refuse this metadata: {err}") from err
    return props


def load_detector(
    path: Path = CENTERNET, classes: Sequence[str] = ROAD_CLASSES, max_detections: int = MAX_DETECTIONS
) -> CenterNet:
    """The pretrained CenterNet (frozen, eval mode) decoding ``classes``; ExportError if unusable."""
    if max_detections < 1:
        raise ExportError(f"max_detections {max_detections} must be at least 1, e.g. {MAX_DETECTIONS}")
    try:
        return CenterNet(classes, top_k=max_detections).load_tfjs(path).eval().requires_grad_(False)
    except ModelConfigError as err:  # PretrainedModelError included
        raise ExportError(f"detector: {err}") from err


def _store_float16(model: onnx.ModelProto) -> None:
    """Store every float32 initializer that float16 holds exactly as float16 + a Cast to float32.

    The pretrained weights were float16 in their file, so this is lossless and halves the model;
    ONNX Runtime folds the Casts at load, so inference is unchanged.
    """
    graph, casts = model.graph, []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if values.size < 16 or not np.array_equal(half.astype(np.float32), values):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}__f16"))
        casts.append(helper.make_node("Cast", [init.name], [name], to=onnx.TensorProto.FLOAT))
    nodes = [*casts, *graph.node]  # Casts before every use: the node list stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)


def _synthetic_frame(size: tuple[int, int]) -> Frame:
    """A deterministic structured pair (gradients + blobs) for parity when no real frames are given."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ir = (127 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.uint8)
    vis = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=2).astype(np.uint8)
    return ir, vis


def export_onnx(
    fusion: nn.Module,
    detector: CenterNet,
    out_path: str | Path,
    *,
    metadata: dict[str, str],
    segmenter: SegHead | SemanticNet | None = None,
    input_size: tuple[int, int] = INPUT_SIZE,
    detector_size: int = DETECTOR_SIZE,
    opset: int = OPSET,
    score_threshold: float = SCORE_THRESHOLD,
    frames: Sequence[Frame] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Export the inference graph to ``out_path``, verify it, return (path, parity report).

    ``detector`` (``load_detector``) runs on the fused image resized to ``detector_size`` on its
    longer side (aspect of ``input_size`` kept); ``segmenter`` is a trained SegHead (on the
    detector's feature; seg_class_names must be SEG_CLASSES), a trained semantic net, or None
    (segmentation output zeros, ``segmentation_trained`` false). ``metadata`` holds the caller's
    keys: model_name, seg_class_names (JSON list), description; the rest come from the graph.
    Parity runs on ``frames`` (default: one synthetic pair); ExportError on any failure.
    """
    h, w = input_size
    if h % SIZE_DIVISOR or w % SIZE_DIVISOR:
        raise ExportError(
            f"input size {input_size} is not a multiple of {SIZE_DIVISOR}: pick e.g. (480, 640)"
        )
    try:
        det_size = detector_input_size(input_size, detector_size)
    except ModelConfigError as err:
        raise ExportError(f"--detector-size {detector_size}: {err}") from err
    graph = InferenceGraph(
        fusion, FusedImageDetector(detector, det_size, score_threshold=score_threshold), segmenter
    ).eval()
    out_path = Path(out_path)
    props = _metadata(graph, metadata, input_size, out_path)
    ir = torch.zeros(1, 1, h, w, dtype=torch.uint8)
    visible = torch.zeros(1, 3, h, w, dtype=torch.uint8)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Shape arithmetic on traced sizes warns about constants; the dynamic-size test checks it.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # The detector's explicit pads with a dynamic batch: harmless (docs/detector.md).
            warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
            graph(ir, visible)  # dry run: fails here, with a torch trace, rather than inside the exporter
            image = {0: "N", 2: "H", 3: "W"}
            torch.onnx.export(
                graph,
                (ir, visible),
                str(out_path),
                input_names=INPUTS,
                output_names=OUTPUTS,
                opset_version=opset,
                dynamo=False,
                dynamic_axes={
                    "ir": image,
                    "visible": image,
                    "fused": image,
                    "boxes": {0: "N"},
                    "scores": {0: "N"},
                    "classes": {0: "N"},
                    "num_detections": {0: "N"},
                    "segmentation": {0: "N", 1: "H", 2: "W"},
                },
            )
        model = onnx.load(str(out_path))
        _store_float16(model)
        onnx.checker.check_model(model, full_check=True)
    except (RuntimeError, onnx.checker.ValidationError) as err:
        raise ExportError(f"exporting {out_path} failed: {err}") from err
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(out_path))
    report = check_parity(out_path, graph, list(frames) if frames else [_synthetic_frame(input_size)])
    return out_path, report


def _match_detections(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
    """Same detections, order-free (near-equal scores may swap): same count, each pairs up by class/box."""
    (boxes_a, cls_a), (boxes_b, cls_b) = a, b
    if len(cls_a) != len(cls_b):
        return False
    unused = np.ones(len(cls_b), dtype=bool)
    for box, cls in zip(boxes_a, cls_a, strict=True):
        close = np.all(np.abs(boxes_b - box) <= 1e-3 * np.maximum(1.0, np.abs(box)), axis=1)
        hit = np.flatnonzero(unused & close & (cls_b == cls))
        if not len(hit):
            return False
        unused[hit[0]] = False
    return True


def check_parity(onnx_path: str | Path, graph: InferenceGraph, frames: Sequence[Frame]) -> dict[str, Any]:
    """Run ``frames`` (resized to the model's input size) through ORT and PyTorch and compare: the
    fused images (≤ 1 grey level: float rounding), then detections and segmentation of PyTorch's task
    nets on ORT's own fused image, so a 1-level difference upstream cannot fail the task stages.

    Returns:
        {"frames", "fused_max_abs_diff", "detections_torch", "detections_onnx", "detections_match",
        "segmentation_agreement"}; raises ExportError when out of tolerance.
    """
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    info = ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map, Path(onnx_path))
    size = info.input_size[::-1]  # (width, height) for cv2.resize
    fused_diff, det_torch, det_onnx, seg_equal, seg_total, det_match = 0, 0, 0, 0, 0, True
    for ir_img, vis_img in frames:
        ir = cv2.resize(ir_img, size, interpolation=cv2.INTER_AREA)[None, None]
        vis = cv2.resize(vis_img, size, interpolation=cv2.INTER_AREA).transpose(2, 0, 1)[None]
        ours = session.run(OUTPUTS, {"ir": np.ascontiguousarray(ir), "visible": np.ascontiguousarray(vis)})
        with torch.no_grad():
            fused_ref = graph.fuse(torch.from_numpy(ir), torch.from_numpy(vis)).numpy()
            ref = [fused_ref, *(t.numpy() for t in graph.tasks(torch.from_numpy(ours[0])))]
        fused_diff = max(fused_diff, int(np.abs(ours[0].astype(np.int16) - ref[0].astype(np.int16)).max()))
        n_o, n_r = int(ours[4][0]), int(ref[4][0])
        det_onnx, det_torch = det_onnx + n_o, det_torch + n_r
        det_match &= _match_detections(
            (ref[1][0, :n_r], ref[3][0, :n_r]), (ours[1][0, :n_o], ours[3][0, :n_o])
        )
        seg_equal += int((ours[5] == ref[5]).sum())
        seg_total += ours[5].size
    report = {
        "frames": len(frames),
        "fused_max_abs_diff": fused_diff,
        "detections_torch": det_torch,
        "detections_onnx": det_onnx,
        "detections_match": det_match,
        "segmentation_agreement": seg_equal / max(seg_total, 1),
    }
    problems = []
    if fused_diff > 1:
        problems.append(f"fused image differs by {fused_diff} grey levels (limit 1)")
    if not det_match:
        problems.append(f"detections differ (torch {det_torch}, onnx {det_onnx})")
    if report["segmentation_agreement"] < MIN_SEG_AGREEMENT:
        problems.append(
            f"segmentation agreement {report['segmentation_agreement']:.5f} < {MIN_SEG_AGREEMENT}"
        )
    if problems:
        raise ExportError(f"ONNX Runtime parity failed for {onnx_path}: {'; '.join(problems)} ({report})")
    return report


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    section = config.get(name) or {}
    if not isinstance(section, dict):
        raise ExportError(f"checkpoint config section {name!r} is not a mapping: re-save the checkpoint")
    return dict(section)


def load_checkpoint_models(
    path: str | Path,
) -> tuple[nn.Module, SegHead | SemanticNet | None, dict[str, Any]]:
    """Build the fusion net, and the segmenter: the SegHead of a run with the segmentation task,
    or the semantic net when its segmentation head was trained.

    The semantic net's detection head is not used: the pretrained detector replaces it.

    Returns:
        (fusion, segmenter or None, meta) with meta keys seg_class_names, description and
        detector (the fine-tuned detector's state of a run with detection.finetune_head, else None).
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        config, models = ckpt["config"], ckpt["models"]
        class_names, seg_class_names = list(ckpt["class_names"]), list(ckpt["seg_class_names"])
    except (OSError, RuntimeError, KeyError, TypeError) as err:
        raise ExportError(
            f"cannot read checkpoint {path}: {err!r}; pass a file written by fusion-train"
        ) from err
    sem_section = _section(config, "semantic_net")
    for key, names in (("num_classes", class_names), ("num_seg_classes", seg_class_names)):
        if sem_section.setdefault(key, len(names)) != len(names):
            raise ExportError(
                f"{path}: semantic_net.{key}={sem_section[key]} but there are {len(names)} names"
            )
    seg_trained = models.get("semantic") is not None and bool(ckpt.get("trained", {}).get("segmentation"))
    try:
        fusion = build_fusion_net(FusionNetConfig(**_section(config, "fusion_net")))
        fusion.load_state_dict(models["fusion"])
        segmenter: SegHead | SemanticNet | None = None
        if models.get("seg_head") is not None:
            head_cfg = _section(_section(config, "segmentation"), "head")
            segmenter = SegHead(SegHeadConfig(**head_cfg))
            segmenter.load_state_dict(models["seg_head"])
            segmenter.eval()
            seg_class_names = list(SEG_CLASSES)
        elif seg_trained:
            segmenter = SemanticNet(SemanticNetConfig(**sem_section))
            segmenter.load_state_dict(models["semantic"])
            segmenter.eval()
    except (ModelConfigError, TypeError, RuntimeError) as err:
        raise ExportError(f"{path}: the config does not build the saved networks: {err}") from err
    meta = {
        "seg_class_names": seg_class_names,
        "description": _describe(ckpt),
        "detector": models.get("detector"),
    }
    return fusion.eval(), segmenter, meta


def _describe(ckpt: dict[str, Any]) -> str:
    """One line for logs and model cards: architecture, training mode, data, steps, val metrics
    (the segmentation is named by the export, which knows what the graph holds)."""
    config = ckpt.get("config", {})
    bilevel = config.get("bilevel", {})
    data = [spec.get("root", "?") for spec in config.get("data", {}).get("fusion_train", [])]
    tasks = bilevel.get("tasks", []) if bilevel.get("mode") != "fusion_only" else []
    if "detection" in tasks and config.get("detection", {}).get("finetune_head"):
        tasks = [t if t != "detection" else "detection (head fine-tuned)" for t in tasks]
    net = config.get("fusion_net", {})
    arch = net.get("arch", "?")
    output = f" ({net.get('output', 'blend')} output)" if arch != "paper" else ""  # the paper net's own
    return (
        f"fusion net {arch}{output}, "
        f"{bilevel.get('mode', '?')}/{bilevel.get('aggregation', '?')} training"
        f"{' with ' + ', '.join(tasks) if tasks else ''}, "
        f"{ckpt.get('step', '?')} steps on {', '.join(data) or '?'}; "
        f"val metrics {json.dumps({k: round(float(v), 4) for k, v in ckpt.get('metrics', {}).items()})}"
    )


def _read_frames(folder: Path, limit: int = 4) -> list[Frame]:
    """Up to ``limit`` (ir, visible) pairs of a dataset folder (the runtime's pair rule)."""
    try:
        return [read_pair(pair) for pair in find_pairs(folder)[:limit]]
    except PipelineError as err:
        raise ExportError(f"--check {folder}: {err}") from err


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    *,
    input_size: tuple[int, int] = INPUT_SIZE,
    detector_path: Path = CENTERNET,
    detector_size: int = DETECTOR_SIZE,
    classes: Sequence[str] = ROAD_CLASSES,
    max_detections: int = MAX_DETECTIONS,
    score_threshold: float = SCORE_THRESHOLD,
    check_dir: Path | None = None,
    seg_head: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """A training checkpoint + the pretrained detector (+ ``seg_head``, a ``head.pt`` of
    ``training.train_seg``) -> contract ONNX at ``out``, parity checked on ``check_dir``'s pairs
    (default: TNO when present, else a synthetic pair).

    Returns:
        (path, parity report).

    Raises:
        ExportError: the checkpoint, the detector files or options, the seg head, the check folder or
            the export is unusable.
    """
    fusion, segmenter, meta = load_checkpoint_models(checkpoint)
    detector = load_detector(detector_path, classes, max_detections)
    if meta["detector"] is not None:  # the run fine-tuned the detector's head
        try:
            detector.load_state_dict(meta["detector"])
        except RuntimeError as err:
            raise ExportError(
                f"{checkpoint}: its fine-tuned detector does not fit {detector_path} with classes "
                f"{list(classes)}: export with the run's detector and classes ({err})"
            ) from err
    if seg_head is not None:
        if segmenter is not None:
            raise ExportError(f"{checkpoint} has a trained segmentation head: drop --seg-head {seg_head}")
        try:
            segmenter = load_seg_head(seg_head)
        except ModelConfigError as err:
            raise ExportError(f"--seg-head: {err}") from err
        meta["seg_class_names"] = list(SEG_CLASSES)
    check_dir = check_dir or (TNO if TNO.is_dir() else None)
    metadata = {
        "model_name": out.stem,
        "seg_class_names": json.dumps(meta["seg_class_names"]),
        "description": meta["description"],
    }
    return export_onnx(
        fusion,
        detector,
        out,
        metadata=metadata,
        segmenter=segmenter,
        input_size=input_size,
        detector_size=detector_size,
        score_threshold=score_threshold,
        frames=_read_frames(check_dir) if check_dir else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``fusion-export``: checkpoint + pretrained detector -> contract ONNX, ORT parity on real frames."""
    parser = argparse.ArgumentParser(prog="fusion-export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", default=REPO_ROOT / "models" / "fusion_rt.onnx", type=Path)
    parser.add_argument("--input-size", nargs=2, type=int, default=INPUT_SIZE, metavar=("H", "W"))
    parser.add_argument("--detector", default=CENTERNET, type=Path, help="the pretrained centernet.json")
    parser.add_argument(
        "--detector-size", type=int, default=DETECTOR_SIZE,
        help="longer side of the detector's input, a multiple of 32 (e.g. 320, 416, 512); aspect kept",
    )  # fmt: skip
    parser.add_argument("--classes", nargs="+", default=list(ROAD_CLASSES), help="COCO class names to detect")
    parser.add_argument("--max-detections", type=int, default=MAX_DETECTIONS)
    parser.add_argument("--score-threshold", type=float, default=SCORE_THRESHOLD)
    parser.add_argument(
        "--check", type=Path, help="dataset folder of pairs for parity (default: TNO if present)"
    )
    parser.add_argument(
        "--seg-head", type=Path, help="a head.pt of python -m training.train_seg (box-supervised SegHead)"
    )
    args = parser.parse_args(argv)
    try:
        out, report = export_checkpoint(
            args.checkpoint,
            args.out,
            input_size=tuple(args.input_size),
            detector_path=args.detector,
            detector_size=args.detector_size,
            classes=args.classes,
            max_detections=args.max_detections,
            score_threshold=args.score_threshold,
            check_dir=args.check,
            seg_head=args.seg_head,
        )
    except ExportError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
