"""ONNX export of tiny nets: contract, metadata, dynamic H/W, ORT vs PyTorch parity on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fusion_node.pipeline import FusionPipeline, ModelInfo, PipelineConfig, open_backend
from fusion_node.pipeline.model import CALLER_KEYS, CONTRACT, CONTRACT_INPUTS, CONTRACT_OUTPUTS
from fusion_node.pipeline.pair_files import find_pairs, read_pair
from training.export import (
    NMS_IOU_THRESHOLD,
    SCORE_THRESHOLD,
    SEG_HEAD_NOTE,
    SEMANTIC_NOTE,
    ExportError,
    check_parity,
    export_onnx,
    load_checkpoint_models,
    load_detector,
    main,
)
from training.models.centernet import ROAD_CLASSES, CenterNet
from training.models.fusion import FusionNetConfig, build_fusion_net
from training.models.inference import FusedImageDetector, InferenceGraph, detector_input_size
from training.models.seg_classes import SEG_CLASSES
from training.models.seghead import SegHead, SegHeadConfig
from training.models.semantic import SemanticNet, SemanticNetConfig
from training.paths import CENTERNET, SHARED_DATA

SIZE = (96, 128)
DETECTOR_SIZE = 128  # small and fast; the default model uses 512
SEM_CFG = {"num_classes": 3, "num_seg_classes": 4, "width": 8, "neck_width": 16, "seg_width": 8}
SEG_NAMES = ["unlabelled", "car", "person", "bike"]


def _frames(name: str, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    folder = SHARED_DATA / name
    if not (folder / "ir").is_dir():
        pytest.skip(f"real data missing: {folder}")
    return [read_pair(pair) for pair in find_pairs(folder)[:count]]


@pytest.fixture(scope="module")
def detector() -> CenterNet:
    if not CENTERNET.is_file():
        pytest.skip(f"pretrained detector not found at {CENTERNET}")
    return load_detector(CENTERNET, ROAD_CLASSES, max_detections=20)


def _tiny_fusion() -> torch.nn.Module:
    torch.manual_seed(0)
    fusion = build_fusion_net(FusionNetConfig(widths=(8, 8, 16))).eval()
    torch.nn.init.normal_(fusion.out.weight, std=0.05)  # so the fusion net is not the identity mean
    return fusion


def _metadata() -> dict[str, str]:
    return {"model_name": "tiny", "seg_class_names": json.dumps(SEG_NAMES), "description": "test export"}


def _graph(detector: CenterNet, segmenter: SemanticNet | None = None) -> InferenceGraph:
    size = detector_input_size(SIZE, DETECTOR_SIZE)
    head = FusedImageDetector(detector, size, score_threshold=SCORE_THRESHOLD)
    return InferenceGraph(_tiny_fusion(), head, segmenter).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, detector: CenterNet) -> tuple[Path, InferenceGraph]:
    # Export verifies parity itself (on a synthetic pair by default); the real frames come below.
    path, _report = export_onnx(
        _tiny_fusion(), detector, tmp_path_factory.mktemp("onnx") / "tiny.onnx",
        metadata=_metadata(), input_size=SIZE, detector_size=DETECTOR_SIZE,
    )  # fmt: skip
    return path, _graph(detector)


def test_export_follows_the_runtime_contract(exported: tuple[Path, InferenceGraph]) -> None:
    """The exported file through the runtime's own checks: every tensor's name, dtype and rank
    (check_io, run by the backend) and every metadata key and value (ModelInfo)."""
    path, _ = exported
    backend = open_backend(path, kind="onnxruntime")  # raises ModelError on any I/O difference
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(CONTRACT_INPUTS)  # in the contract's order
    assert [o.name for o in session.get_outputs()] == list(CONTRACT_OUTPUTS)
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == backend.metadata
    graph_keys = {"contract", "input_height", "input_width", "size_divisor", "max_detections",
                  "score_threshold", "nms_iou_threshold"}  # fmt: skip
    assert set(meta) == set(CALLER_KEYS) | graph_keys
    assert ModelInfo.from_metadata(meta, path) == ModelInfo(
        class_names=ROAD_CLASSES,  # the detector's classes, not the caller's
        seg_class_names=tuple(SEG_NAMES),
        detection_trained=True,  # pretrained
        segmentation_trained=False,  # no segmenter in the graph
        input_size=SIZE,
        size_divisor=32,
        max_detections=20,
        score_threshold=SCORE_THRESHOLD,
        nms_iou_threshold=NMS_IOU_THRESHOLD,
        model_name="tiny",
        description="test export; detector: pretrained COCO CenterNet-MobileNetV3 (frozen, "
        "docs/detector.md) on the fused image at 96×128; segmentation: NOT trained (outputs zeros)",
    )
    assert meta["contract"] == CONTRACT
    assert {p.domain or "ai.onnx": p.version for p in model.opset_import}["ai.onnx"] == 17


def test_detector_weights_are_stored_as_float16(exported: tuple[Path, InferenceGraph]) -> None:
    """The pretrained weights (float16 in their file) are kept as float16 + Cast: lossless, half size."""
    path, graph = exported
    model = onnx.load(str(path))
    halves = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    cast_inputs = {n.input[0] for n in model.graph.node if n.op_type == "Cast"}
    assert len(halves) > 100 and {i.name for i in halves} <= cast_inputs
    stored = sum(onnx.numpy_helper.to_array(i).size for i in halves)
    detector_params = sum(p.numel() for p in graph.detector.parameters())
    assert stored >= 0.95 * detector_params  # nearly all of the detector's weights
    assert path.stat().st_size < 2.5 * detector_params  # bytes: float16, not float32


def test_parity_on_real_frames(exported: tuple[Path, InferenceGraph]) -> None:
    path, graph = exported
    report = check_parity(path, graph, _frames("tno", 2) + _frames("roadscene", 2))
    assert report["frames"] == 4
    assert report["fused_max_abs_diff"] <= 1
    assert report["detections_match"] and report["detections_torch"] > 0
    assert report["segmentation_agreement"] == 1.0


def test_dynamic_batch_and_size(exported: tuple[Path, InferenceGraph]) -> None:
    """Other sizes than the export's: boxes follow the input size (clipped to it), as PyTorch's do."""
    path, graph = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ir_real, vis_real = _frames("roadscene", 1)[0]
    for n, h, w in ((1, 64, 96), (2, 160, 128)):
        ir = np.broadcast_to(cv2.resize(ir_real, (w, h))[None, None], (n, 1, h, w)).copy()
        vis = np.broadcast_to(cv2.resize(vis_real, (w, h)).transpose(2, 0, 1)[None], (n, 3, h, w)).copy()
        fused, boxes, scores, classes, num, seg = session.run(None, {"ir": ir, "visible": vis})
        assert fused.shape == (n, 3, h, w) and seg.shape == (n, h, w) and not seg.any()
        assert boxes.shape == (n, 20, 4) and scores.shape == (n, 20) and num.shape == (n,)
        assert (np.diff(scores, axis=1) <= 0).all()  # descending
        assert num[0] > 0 and (boxes[..., 0::2] <= w).all() and (boxes[..., 1::2] <= h).all()
        assert (boxes >= 0).all() and (classes < len(ROAD_CLASSES)).all()
        with torch.no_grad():
            ref = graph(torch.from_numpy(ir), torch.from_numpy(vis))
        assert np.abs(fused.astype(int) - ref[0].numpy().astype(int)).max() <= 1
        k = int(num[0])
        np.testing.assert_allclose(boxes[0, :k], ref[1][0, :k].numpy(), atol=0.05)


def test_trained_segmentation_is_exported(tmp_path: Path, detector: CenterNet) -> None:
    torch.manual_seed(0)
    segmenter = SemanticNet(SemanticNetConfig(**SEM_CFG)).eval()
    path, report = export_onnx(
        _tiny_fusion(), detector, tmp_path / "seg.onnx", metadata=_metadata(), segmenter=segmenter,
        input_size=SIZE, detector_size=DETECTOR_SIZE, frames=_frames("tno", 1),
    )  # fmt: skip
    assert report["segmentation_agreement"] >= 0.999
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["segmentation_trained"] == "true" and meta["description"].endswith(SEMANTIC_NOTE)


def _seg_head_file(tmp_path: Path) -> Path:
    """A head.pt as training.train_seg writes it: random classifier rows with zero sum and no bias,
    so the argmax follows how the (ReLU, all positive) features vary over the image, not their
    common level: several classes, where the default init predicts one everywhere."""
    torch.manual_seed(0)
    head = SegHead(SegHeadConfig(width=8, depth=1))
    with torch.no_grad():
        weight = torch.randn_like(head.classifier.weight)
        head.classifier.weight.copy_(weight - weight.mean(1, keepdim=True))
        head.classifier.bias.zero_()
    path = tmp_path / "head.pt"
    config = {"head": {"width": 8, "depth": 1}}
    torch.save({"head": head.state_dict(), "classes": list(SEG_CLASSES), "config": config}, path)
    return path


def test_seg_head_is_exported_and_the_runtime_returns_its_masks(tmp_path: Path, detector: CenterNet) -> None:
    """fusion-export --seg-head: the SegHead reads the detector's feature in the graph; the runtime
    (FusionPipeline on ONNX Runtime) returns uint8 SEG_CLASSES ids at the visible image's size."""
    check = SHARED_DATA / "tno"
    if not (check / "ir").is_dir():
        pytest.skip(f"real data missing: {check}")
    out = tmp_path / "seg.onnx"
    argv = ["--checkpoint", str(_checkpoint(tmp_path, semantic=False)), "--out", str(out)]
    argv += ["--check", str(check), "--input-size", *map(str, SIZE), "--detector-size", str(DETECTOR_SIZE)]
    assert main([*argv, "--seg-head", str(_seg_head_file(tmp_path))]) == 0
    pipeline = FusionPipeline(PipelineConfig(model_path=out, threads=1))
    info = pipeline.info
    assert info.segmentation_trained and info.seg_class_names == SEG_CLASSES
    assert info.description.endswith(SEG_HEAD_NOTE)  # the card names the supervision: boxes
    ir, visible = _frames("tno", 1)[0]
    mask = pipeline.process(ir, visible).segmentation
    assert mask is not None and mask.dtype == np.uint8 and mask.shape == visible.shape[:2]
    assert set(np.unique(mask)) <= set(range(len(SEG_CLASSES))) and len(np.unique(mask)) > 1
    # A checkpoint that has its own trained segmenter and a seg head: the export refuses to pick one.
    both = ["--checkpoint", str(_checkpoint(tmp_path, semantic=True)), "--out", str(out)]
    assert main([*both, "--seg-head", str(_seg_head_file(tmp_path))]) == 1


def test_seg_head_export_rejects_other_class_names(tmp_path: Path, detector: CenterNet) -> None:
    with pytest.raises(ExportError, match="SEG_CLASSES"):
        export_onnx(
            _tiny_fusion(), detector, tmp_path / "x.onnx", metadata=_metadata(), segmenter=SegHead(),
            input_size=SIZE, detector_size=DETECTOR_SIZE,
        )  # fmt: skip


def test_export_rejects_bad_input(tmp_path: Path, detector: CenterNet) -> None:
    fusion, out = _tiny_fusion(), tmp_path / "x.onnx"
    with pytest.raises(ExportError, match="multiple of 32"):
        export_onnx(fusion, detector, out, metadata=_metadata(), input_size=(100, 128))
    with pytest.raises(ExportError, match=r"--detector-size 300.*multiples of 32"):
        export_onnx(fusion, detector, out, metadata=_metadata(), input_size=SIZE, detector_size=300)
    partial = {k: v for k, v in _metadata().items() if k != "model_name"}
    with pytest.raises(ExportError, match="model_name"):
        export_onnx(fusion, detector, out, metadata=partial, input_size=SIZE)
    claimed = {**_metadata(), "detection_trained": "false"}  # the graph decides that, not the caller
    with pytest.raises(ExportError, match="detection_trained"):
        export_onnx(fusion, detector, out, metadata=claimed, input_size=SIZE)


def _checkpoint(tmp_path: Path, *, semantic: bool) -> Path:
    torch.manual_seed(0)
    ckpt = {
        "config": {"fusion_net": {"widths": [8, 8, 16]}, "semantic_net": SEM_CFG},
        "step": 7,
        "models": {
            "fusion": _tiny_fusion().state_dict(),
            "discriminator": None,
            "semantic": SemanticNet(SemanticNetConfig(**SEM_CFG)).state_dict() if semantic else None,
        },
        "trained": {"detection": True, "segmentation": True},
        "class_names": ["people", "car", "bus"],
        "seg_class_names": SEG_NAMES,
        "metrics": {},
    }
    torch.save(ckpt, tmp_path / "ckpt.pt")
    return tmp_path / "ckpt.pt"


def test_checkpoint_segmenter_only_when_trained_and_saved(tmp_path: Path) -> None:
    fusion, segmenter, meta = load_checkpoint_models(_checkpoint(tmp_path, semantic=True))
    assert isinstance(segmenter, SemanticNet)
    torch.testing.assert_close(fusion.state_dict()["out.weight"], _tiny_fusion().state_dict()["out.weight"])
    # No semantic weights: no segmenter, whatever "trained" says.
    _fusion, segmenter, meta = load_checkpoint_models(_checkpoint(tmp_path, semantic=False))
    assert segmenter is None
    assert meta["seg_class_names"] == SEG_NAMES


def test_cli_exports_a_checkpoint_with_the_detector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detector: CenterNet
) -> None:
    out = tmp_path / "fusion_rt.onnx"
    check = SHARED_DATA / "roadscene"
    if not check.is_dir():
        pytest.skip(f"real data missing: {check}")
    argv = ["--checkpoint", str(_checkpoint(tmp_path, semantic=False)), "--out", str(out)]
    argv += ["--input-size", "64", "96", "--detector-size", "96", "--check", str(check)]
    assert main([*argv, "--max-detections", "10", "--classes", "person", "car"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert report["frames"] == 4 and report["detections_match"]
    meta = ModelInfo.from_metadata({p.key: p.value for p in onnx.load(str(out)).metadata_props}, out)
    assert meta.class_names == ("person", "car") and meta.max_detections == 10
    assert meta.detection_trained and not meta.segmentation_trained and meta.model_name == "fusion_rt"
    assert "64×96" in meta.description  # 64×96 at 96 on the longer side: the detector's own size


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--detector-size", "300"], "ERROR: --detector-size 300: detector input 300×300: sides must be"),
        (["--classes", "person", "lamp"], "ERROR: detector: detector classes ['person', 'lamp']: unknown"),
        (["--detector", "missing/centernet.json"], "ERROR: detector: missing/centernet.json: model file not"),
        (["--max-detections", "0"], "ERROR: max_detections 0 must be at least 1"),
        (["--checkpoint", "missing.pt"], "ERROR: cannot read checkpoint missing.pt"),
    ],
    ids=["detector size", "class name", "weights", "max detections", "checkpoint"],
)
def test_cli_bad_input_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detector: CenterNet, option: list[str], message: str
) -> None:
    argv = ["--checkpoint", str(_checkpoint(tmp_path, semantic=False)), "--out", str(tmp_path / "x.onnx")]
    assert main([*argv, *option]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and not (tmp_path / "x.onnx").exists()


def test_cli_corrupt_detector_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detector: CenterNet
) -> None:
    for name in ("centernet.json", "centernet.bin"):
        (tmp_path / name).write_bytes((CENTERNET.parent / name).read_bytes())
    (tmp_path / "centernet.bin").write_bytes((tmp_path / "centernet.bin").read_bytes()[:-100])
    argv = ["--checkpoint", str(_checkpoint(tmp_path, semantic=False)), "--out", str(tmp_path / "x.onnx")]
    assert main([*argv, "--detector", str(tmp_path / "centernet.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: detector:") and "truncated" in err and err.count("\n") == 1
