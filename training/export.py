"""ONNX export of the inference graph (uint8 IR + BGR in; fused image, detections, segmentation out).

The graph and its metadata follow docs/model_contract.md. Steps (timm utils/onnx.py, ultralytics
exporter): dry run, ``torch.onnx.export`` (TorchScript exporter, for the NMS symbolic) with named
dynamic axes, ``onnx.checker`` full check, metadata_props, ONNX Runtime parity against PyTorch.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import torch
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
from training.models.color import bgr_to_ycrcb, ycrcb_to_bgr
from training.models.decode import decode_detections
from training.models.errors import ModelConfigError
from training.models.fusion import FusionNetConfig, build_fusion_net
from training.models.semantic import SemanticNet, SemanticNetConfig
from training.paths import REPO_ROOT, TNO

INPUTS, OUTPUTS = list(CONTRACT_INPUTS), list(CONTRACT_OUTPUTS)  # the runtime's contract, in its order
INPUT_SIZE = (480, 640)  # (height, width) the graph's metadata names as default
OPSET = 17
MAX_DETECTIONS = 100
# The graph's own filters: permissive, the runtime applies its stricter thresholds on top.
SCORE_THRESHOLD = 0.05
NMS_IOU_THRESHOLD = 0.6
MIN_SEG_AGREEMENT = 0.999
Frame = tuple[np.ndarray, np.ndarray]  # (ir uint8 H×W, visible uint8 H×W×3 BGR)


class ExportError(RuntimeError):
    """The export cannot produce a model that honours the contract (message says what and how to fix)."""


class InferenceGraph(nn.Module):
    """uint8 ``ir`` [N,1,H,W] + uint8 BGR ``visible`` [N,3,H,W] -> the contract's six outputs."""

    def __init__(
        self,
        fusion: nn.Module,
        semantic: SemanticNet,
        *,
        score_threshold: float = SCORE_THRESHOLD,
        nms_iou_threshold: float = NMS_IOU_THRESHOLD,
        max_detections: int = MAX_DETECTIONS,
    ) -> None:
        super().__init__()
        self.fusion = fusion
        self.semantic = semantic
        self.score_threshold = score_threshold
        self.nms_iou_threshold = nms_iou_threshold
        self.max_detections = max_detections

    def forward(self, ir: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ycrcb = bgr_to_ycrcb(visible.float() / 255.0)  # [N, 3, H, W]
        fused_y = self.fusion(ir.float() / 255.0, ycrcb[:, :1])  # [N, 1, H, W]
        bgr = ycrcb_to_bgr(torch.cat([fused_y, ycrcb[:, 1:]], dim=1))
        fused = (bgr * 255.0).round().clamp(0, 255).to(torch.uint8)  # [N, 3, H, W]
        # The semantic net sees exactly what the uint8 output represents, so torch and ORT agree.
        out = self.semantic(fused.float() / 255.0)
        boxes, scores, classes, num = decode_detections(
            out,
            self.semantic.strides,
            score_threshold=self.score_threshold,
            nms_iou_threshold=self.nms_iou_threshold,
            max_detections=self.max_detections,
        )
        seg = cast(torch.Tensor, out["seg"])  # [N, S, H, W] logits
        return fused, boxes, scores, classes, num, seg.argmax(1).to(torch.uint8)


def _metadata(
    graph: InferenceGraph, caller: dict[str, str], input_size: tuple[int, int], out_path: Path
) -> dict[str, str]:
    """The caller's keys plus the graph's, checked by the runtime's own parser before export."""
    missing = [k for k in CALLER_KEYS if k not in caller]
    if missing:
        raise ExportError(f"metadata lacks {missing}: pass every key of docs/model_contract.md's table")
    props = {
        **caller,
        **graph_metadata(
            input_size=input_size,
            max_detections=graph.max_detections,
            score_threshold=graph.score_threshold,
            nms_iou_threshold=graph.nms_iou_threshold,
        ),
    }
    try:
        ModelInfo.from_metadata(props, out_path)
    except ModelError as err:
        raise ExportError(f"the runtime would refuse this metadata: {err}") from err
    return props


def _synthetic_frame(size: tuple[int, int]) -> Frame:
    """A deterministic structured pair (gradients + blobs) for parity when no real frames are given."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ir = (127 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.uint8)
    vis = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=2).astype(np.uint8)
    return ir, vis


def export_onnx(
    fusion: nn.Module,
    semantic: SemanticNet,
    out_path: str | Path,
    *,
    metadata: dict[str, str],
    input_size: tuple[int, int] = INPUT_SIZE,
    opset: int = OPSET,
    max_detections: int = MAX_DETECTIONS,
    score_threshold: float = SCORE_THRESHOLD,
    nms_iou_threshold: float = NMS_IOU_THRESHOLD,
    frames: Sequence[Frame] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Export the inference graph to ``out_path``, verify it, return (path, parity report).

    ``metadata`` holds the caller's keys (model.CALLER_KEYS: class names as JSON lists, flags as
    true/false); the graph-derived ones are added here. Parity runs on ``frames`` (default: one
    synthetic pair); ExportError on any failure.
    """
    h, w = input_size
    if h % SIZE_DIVISOR or w % SIZE_DIVISOR:
        raise ExportError(
            f"input size {input_size} is not a multiple of {SIZE_DIVISOR}: pick e.g. (480, 640)"
        )
    graph = InferenceGraph(
        fusion,
        semantic,
        score_threshold=score_threshold,
        nms_iou_threshold=nms_iou_threshold,
        max_detections=max_detections,
    ).eval()
    out_path = Path(out_path)
    props = _metadata(graph, metadata, input_size, out_path)
    ir = torch.zeros(1, 1, h, w, dtype=torch.uint8)
    visible = torch.zeros(1, 3, h, w, dtype=torch.uint8)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The NMS Function's eager body is traced but replaced by its symbolic: its warnings are noise.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
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
    """Run ``frames`` (resized to the model's input size) through ORT and PyTorch and compare.

    Detection parity is enforced only when the model's ``detection_trained`` is true: an untrained
    head's near-equal scores make NMS choices arbitrary, and the runtime does not publish them.

    Returns:
        {"frames", "fused_max_abs_diff", "detections_torch", "detections_onnx", "detections_match",
        "detections_enforced", "segmentation_agreement"}; raises ExportError when out of tolerance.
    """
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    info = ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map, Path(onnx_path))
    size = info.input_size[::-1]  # (width, height) for cv2.resize
    enforce_det = info.detection_trained
    fused_diff, det_torch, det_onnx, seg_equal, seg_total, det_match = 0, 0, 0, 0, 0, True
    for ir_img, vis_img in frames:
        ir = cv2.resize(ir_img, size, interpolation=cv2.INTER_AREA)[None, None]
        vis = cv2.resize(vis_img, size, interpolation=cv2.INTER_AREA).transpose(2, 0, 1)[None]
        ours = session.run(OUTPUTS, {"ir": np.ascontiguousarray(ir), "visible": np.ascontiguousarray(vis)})
        with torch.no_grad():
            ref = [t.numpy() for t in graph(torch.from_numpy(ir), torch.from_numpy(vis))]
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
        "detections_enforced": enforce_det,
        "segmentation_agreement": seg_equal / max(seg_total, 1),
    }
    problems = []
    if fused_diff > 1:
        problems.append(f"fused image differs by {fused_diff} grey levels (limit 1)")
    if enforce_det and not det_match:
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


def load_checkpoint_models(path: str | Path) -> tuple[nn.Module, SemanticNet, dict[str, Any]]:
    """Build the fusion and semantic nets from a training checkpoint.

    A checkpoint without semantic weights yields an untrained semantic net of the configured size,
    and ``meta`` marks its heads untrained (from ``ckpt["trained"]``).

    Returns:
        (fusion, semantic, meta) with meta keys class_names, seg_class_names, detection_trained,
        segmentation_trained, description.
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
    try:
        fusion = build_fusion_net(FusionNetConfig(**_section(config, "fusion_net")))
        semantic = SemanticNet(SemanticNetConfig(**sem_section))
        fusion.load_state_dict(models["fusion"])
        if models.get("semantic") is not None:
            semantic.load_state_dict(models["semantic"])
    except (ModelConfigError, TypeError, RuntimeError) as err:
        raise ExportError(f"{path}: the config does not build the saved networks: {err}") from err
    trained = ckpt.get("trained", {}) if models.get("semantic") is not None else {}
    meta = {
        "class_names": class_names,
        "seg_class_names": seg_class_names,
        "detection_trained": bool(trained.get("detection", False)),
        "segmentation_trained": bool(trained.get("segmentation", False)),
        "description": _describe(ckpt, trained),
    }
    return fusion.eval(), semantic.eval(), meta


def _describe(ckpt: dict[str, Any], trained: dict[str, bool]) -> str:
    """One line for logs and model cards: architecture, training mode, data, steps, heads."""
    config = ckpt.get("config", {})
    bilevel = config.get("bilevel", {})
    data = [spec.get("root", "?") for spec in config.get("data", {}).get("fusion_train", [])]
    untrained = [head for head in ("detection", "segmentation") if not trained.get(head, False)]
    heads = f"{' and '.join(untrained)} head(s) NOT trained" if untrained else "all heads trained"
    return (
        f"fusion net {config.get('fusion_net', {}).get('arch', '?')}, "
        f"{bilevel.get('mode', '?')}/{bilevel.get('aggregation', '?')} training, "
        f"{ckpt.get('step', '?')} steps on {', '.join(data) or '?'}; {heads}; "
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
    max_detections: int = MAX_DETECTIONS,
    score_threshold: float = SCORE_THRESHOLD,
    nms_iou_threshold: float = NMS_IOU_THRESHOLD,
    check_dir: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """A training checkpoint -> contract ONNX at ``out``, parity checked on ``check_dir``'s pairs
    (default: TNO when present, else a synthetic pair); returns (path, parity report).

    Raises:
        ExportError: the checkpoint, the check folder or the export is unusable.
    """
    fusion, semantic, meta = load_checkpoint_models(checkpoint)
    check_dir = check_dir or (TNO if TNO.is_dir() else None)
    metadata = {
        "model_name": out.stem,
        "class_names": json.dumps(meta["class_names"]),
        "seg_class_names": json.dumps(meta["seg_class_names"]),
        "detection_trained": json.dumps(meta["detection_trained"]),
        "segmentation_trained": json.dumps(meta["segmentation_trained"]),
        "description": meta["description"],
    }
    return export_onnx(
        fusion,
        semantic,
        out,
        metadata=metadata,
        input_size=input_size,
        max_detections=max_detections,
        score_threshold=score_threshold,
        nms_iou_threshold=nms_iou_threshold,
        frames=_read_frames(check_dir) if check_dir else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``fusion-export``: checkpoint -> contract ONNX, with ONNX Runtime parity on real frames."""
    parser = argparse.ArgumentParser(prog="fusion-export", description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", default=REPO_ROOT / "models" / "fusion_rt.onnx", type=Path)
    parser.add_argument("--input-size", nargs=2, type=int, default=INPUT_SIZE, metavar=("H", "W"))
    parser.add_argument("--max-detections", type=int, default=MAX_DETECTIONS)
    parser.add_argument("--score-threshold", type=float, default=SCORE_THRESHOLD)
    parser.add_argument("--nms-iou-threshold", type=float, default=NMS_IOU_THRESHOLD)
    parser.add_argument(
        "--check", type=Path, help="dataset folder of pairs for parity (default: TNO if present)"
    )
    args = parser.parse_args(argv)
    try:
        out, report = export_checkpoint(
            args.checkpoint,
            args.out,
            input_size=tuple(args.input_size),
            max_detections=args.max_detections,
            score_threshold=args.score_threshold,
            nms_iou_threshold=args.nms_iou_threshold,
            check_dir=args.check,
        )
    except ExportError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
