"""ONNX export of tiny nets: contract, metadata, dynamic H/W, ORT vs PyTorch parity on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fusion_node.pipeline import ModelInfo, open_backend
from fusion_node.pipeline.model import CALLER_KEYS, CONTRACT, CONTRACT_INPUTS, CONTRACT_OUTPUTS
from fusion_node.pipeline.pair_files import find_pairs, read_pair
from training.export import (
    ExportError,
    InferenceGraph,
    check_parity,
    export_onnx,
    load_checkpoint_models,
    main,
)
from training.models.fusion import FusionNetConfig, build_fusion_net
from training.models.semantic import SemanticNet, SemanticNetConfig
from training.paths import SHARED_DATA

SIZE = (96, 128)
SEM_CFG = {"num_classes": 3, "num_seg_classes": 4, "width": 8, "neck_width": 16, "seg_width": 8}


def _frames(name: str, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    folder = SHARED_DATA / name
    if not (folder / "ir").is_dir():
        pytest.skip(f"real data missing: {folder}")
    return [read_pair(pair) for pair in find_pairs(folder)[:count]]


def _tiny_nets() -> tuple[torch.nn.Module, SemanticNet]:
    torch.manual_seed(0)
    fusion = build_fusion_net(FusionNetConfig(widths=(8, 8, 16))).eval()
    semantic = SemanticNet(SemanticNetConfig(**SEM_CFG)).eval()
    # Spread the untrained scores so detections are distinct (near-ties make NMS order arbitrary).
    torch.nn.init.normal_(semantic.head.cls.weight, std=0.3)
    torch.nn.init.normal_(fusion.out.weight, std=0.05)  # so the fusion net is not the identity mean
    return fusion, semantic


def _metadata(trained: bool = True) -> dict[str, str]:
    flag = json.dumps(trained)
    return {
        "model_name": "tiny",
        "class_names": json.dumps(["people", "car", "bus"]),
        "seg_class_names": json.dumps(["unlabelled", "car", "person", "bike"]),
        "detection_trained": flag,
        "segmentation_trained": flag,
        "description": "test export",
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, InferenceGraph]:
    fusion, semantic = _tiny_nets()
    # Export verifies parity itself (on a synthetic pair by default); the real frames come below.
    path, _report = export_onnx(
        fusion, semantic, tmp_path_factory.mktemp("onnx") / "tiny.onnx",
        metadata=_metadata(), input_size=SIZE, max_detections=20,
    )  # fmt: skip
    return path, InferenceGraph(fusion, semantic, max_detections=20).eval()


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
        class_names=("people", "car", "bus"),
        seg_class_names=("unlabelled", "car", "person", "bike"),
        detection_trained=True,
        segmentation_trained=True,
        input_size=SIZE,
        size_divisor=32,
        max_detections=20,
        score_threshold=0.05,
        nms_iou_threshold=0.6,
        model_name="tiny",
        description="test export",
    )
    assert meta["contract"] == CONTRACT
    assert {p.domain or "ai.onnx": p.version for p in model.opset_import}["ai.onnx"] == 17


def test_parity_on_real_frames(exported: tuple[Path, InferenceGraph]) -> None:
    path, graph = exported
    report = check_parity(path, graph, _frames("tno", 2) + _frames("roadscene", 2))
    assert report["frames"] == 4
    assert report["fused_max_abs_diff"] <= 1
    assert report["detections_match"] and report["detections_enforced"]
    assert report["detections_torch"] > 0
    assert report["segmentation_agreement"] >= 0.999


def test_dynamic_batch_and_size(exported: tuple[Path, InferenceGraph]) -> None:
    path, graph = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n, h, w in ((1, 64, 96), (2, 160, 128)):
        ir = rng.integers(0, 256, (n, 1, h, w), dtype=np.uint8)
        vis = rng.integers(0, 256, (n, 3, h, w), dtype=np.uint8)
        fused, boxes, scores, _classes, num, seg = session.run(None, {"ir": ir, "visible": vis})
        assert fused.shape == (n, 3, h, w) and seg.shape == (n, h, w)
        assert boxes.shape == (n, 20, 4) and scores.shape == (n, 20) and num.shape == (n,)
        with torch.no_grad():
            ref = graph(torch.from_numpy(ir), torch.from_numpy(vis))
        assert np.abs(fused.astype(int) - ref[0].numpy().astype(int)).max() <= 1
        assert (np.diff(scores, axis=1) <= 0).all()  # descending


def test_export_rejects_bad_input(tmp_path: Path) -> None:
    fusion, semantic = _tiny_nets()
    with pytest.raises(ExportError, match="multiple of 32"):
        export_onnx(fusion, semantic, tmp_path / "x.onnx", metadata=_metadata(), input_size=(100, 128))
    partial = {k: v for k, v in _metadata().items() if k != CALLER_KEYS[0]}
    with pytest.raises(ExportError, match="model_name"):
        export_onnx(fusion, semantic, tmp_path / "x.onnx", metadata=partial, input_size=SIZE)


def test_cli_from_checkpoint_without_semantic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fusion, _ = _tiny_nets()
    ckpt = {
        "config": {"fusion_net": {"widths": [8, 8, 16]}, "semantic_net": SEM_CFG},
        "step": 7,
        "models": {"fusion": fusion.state_dict(), "discriminator": None, "semantic": None},
        "trained": {"detection": True, "segmentation": True},
        "class_names": ["people", "car", "bus"],
        "seg_class_names": ["unlabelled", "car", "person", "bike"],
        "metrics": {},
    }
    torch.save(ckpt, tmp_path / "ckpt.pt")
    fusion2, _semantic, meta = load_checkpoint_models(tmp_path / "ckpt.pt")
    # No semantic weights: untrained heads, whatever "trained" says.
    assert meta["detection_trained"] is False and meta["segmentation_trained"] is False
    torch.testing.assert_close(fusion2.state_dict()["out.weight"], fusion.state_dict()["out.weight"])
    out = tmp_path / "fusion_rt.onnx"
    check = SHARED_DATA / "roadscene"
    if not check.is_dir():
        pytest.skip(f"real data missing: {check}")
    argv = ["--checkpoint", str(tmp_path / "ckpt.pt"), "--out", str(out), "--input-size", "64", "96"]
    assert main([*argv, "--check", str(check), "--max-detections", "10"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert report["frames"] == 4 and report["detections_enforced"] is False
    meta_props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta_props["detection_trained"] == "false" and meta_props["model_name"] == "fusion_rt"
    assert main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(out)]) == 1
    assert "ERROR:" in capsys.readouterr().err
