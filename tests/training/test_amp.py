"""bf16 autocast: training does not collapse in any mode, and the exported graph runs under it.

Issue 8: under bf16 autocast the losses' fixed filters ran in bfloat16, SSIM's variances lost all
precision and the fusion network died (constant output, zero gradient) in every mode. CPU autocast
reproduces it, so these run on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import pytest
import torch

from training.bilevel import fuse
from training.config import ExperimentConfig, load_config
from training.data import build_datasets, collate
from training.export import load_detector
from training.losses import fusion_loss
from training.models.centernet import ROAD_CLASSES
from training.models.color import bgr_to_ycrcb
from training.models.fusion import FusionNetConfig, build_fusion_net
from training.models.inference import FusedImageDetector, InferenceGraph, detector_input_size
from training.models.seghead import SegHead, SegHeadConfig
from training.models.semantic import SemanticNet, SemanticNetConfig
from training.paths import CENTERNET
from training.train import train

TINY = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny.yaml"
STEPS = 30


def _tiny(data_dir: Path, *overrides: str) -> ExperimentConfig:
    root = (data_dir / "roadscene").resolve()
    return load_config(TINY, [f"data.fusion_train=[{{kind: paired, root: {root}}}]", *overrides])


def _crops(cfg: ExperimentConfig, count: int = 8) -> dict[str, Any]:
    """A fixed batch of augmented training crops (real RoadScene pairs)."""
    torch.manual_seed(0)
    train_set = build_datasets(cfg.data, [], [])["fusion_train"]
    return collate([train_set[i] for i in range(count)])


def test_fusion_loss_terms_match_float32_under_bf16_autocast(data_dir: Path) -> None:
    cfg = _tiny(data_dir)
    batch = _crops(cfg)
    vis_y = bgr_to_ycrcb(batch["visible"])[:, :1]
    fused = (0.6 * batch["ir"] + 0.4 * vis_y).requires_grad_()
    ref = fusion_loss(fused, batch["ir"], vis_y, cfg.fusion_loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = fusion_loss(fused, batch["ir"], vis_y, cfg.fusion_loss)
    for name, value in ref.items():
        assert amp[name].dtype == torch.float32
        torch.testing.assert_close(amp[name], value, rtol=1e-5, atol=1e-6, msg=name)
        (g_ref,) = torch.autograd.grad(value, fused, retain_graph=True)
        (g_amp,) = torch.autograd.grad(amp[name], fused, retain_graph=True)
        torch.testing.assert_close(g_amp, g_ref, rtol=1e-4, atol=1e-9, msg=name)


@pytest.mark.parametrize("mode", ["fusion_only", "joint", "bilevel"])
def test_bf16_autocast_training_learns(mode: str, data_dir: Path, tmp_path: Path) -> None:
    cfg = _tiny(
        data_dir,
        f"train.out_dir={tmp_path}",
        f"train.max_steps={STEPS}",
        f"train.eval_interval={STEPS}",
        f"train.ckpt_interval={STEPS}",
        "train.eval_images=1",
        "train.amp=true",
        f"bilevel.mode={mode}",
    )
    result = train(cfg)
    assert len(result.history) == STEPS
    assert result.history[-1]["grad_norm"] > 0
    fusion = result.models["fusion"]
    assert fusion is not None
    fusion.eval()

    # A fixed batch of training crops, scored in float32: the net starts as the mean of its
    # sources (zero-initialised output conv) and must end better than that.
    batch = _crops(cfg)
    with torch.no_grad():
        learned = fuse(fusion, batch, cfg.fusion_loss)
        mean = (batch["ir"] + learned["vis_y"]) / 2
        score = {
            name: float(fusion_loss(y, batch["ir"], learned["vis_y"], cfg.fusion_loss)["total"])
            for name, y in (("learned", learned["y"]), ("mean", mean))
        }
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused = fusion(batch["ir"], learned["vis_y"]).float()
    assert score["learned"] < 0.92 * score["mean"], score  # fixed: 0.89; bf16 filters: 0.95 or worse
    # A collapsed net outputs a constant (0 or 1 after the clamp); a live one follows its inputs.
    assert fused.isfinite().all()
    assert fused.std() > 0.5 * mean.std()
    assert torch.corrcoef(torch.stack([fused.flatten(), mean.flatten()]))[0, 1] > 0.5


# Each fusion arch once, each segmenter kind once: the SegHead on the detector's feature, the semantic net.
@pytest.mark.parametrize(("arch", "seg"), [("realtime", "seghead"), ("paper", "semantic")])
def test_inference_graph_runs_under_bf16_autocast(arch: str, seg: str, data_dir: Path) -> None:
    torch.manual_seed(0)
    fusion = build_fusion_net(FusionNetConfig(arch=arch, widths=(8, 8, 16), paper_width=8, paper_growth=4))
    torch.nn.init.normal_(fusion.tail.weight if arch == "paper" else fusion.out.weight, std=0.05)
    if not CENTERNET.is_file():
        pytest.skip(f"pretrained detector not found at {CENTERNET}")
    detector = load_detector(CENTERNET, ROAD_CLASSES, max_detections=20)
    # A low threshold keeps several of the top-20 peaks on these crops: the sort order is checked.
    head = FusedImageDetector(detector, detector_input_size((96, 128), 128), score_threshold=0.01)
    segmenter = (
        SegHead(SegHeadConfig(width=8))
        if seg == "seghead"
        else SemanticNet(SemanticNetConfig(num_classes=3, num_seg_classes=4, width=8, neck_width=16))
    )
    graph = InferenceGraph(fusion, head, segmenter).eval()
    names = sorted((data_dir / "roadscene" / "ir").iterdir())[:2]
    ir = torch.stack(
        [torch.from_numpy(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)[None, :96, :128]) for p in names]
    )
    vis = torch.stack(
        [
            torch.from_numpy(cv2.imread(str(p.parent.parent / "vi" / p.name))[:96, :128].transpose(2, 0, 1))
            for p in names
        ]
    )
    with torch.no_grad():
        ref = graph(ir, vis)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = graph(ir, vis)
    assert [t.dtype for t in out] == [t.dtype for t in ref]  # the contract's dtypes, float32 boxes/scores
    fused, boxes, scores, _classes, num, seg = out
    assert (fused.int() - ref[0].int()).abs().float().mean() < 2  # bf16 convs, same image
    assert seg.shape == ir[:, 0].shape and int(seg.max()) < 4  # class ids at the input size
    assert int(num.sum()) > 0 and boxes.isfinite().all()
    assert (scores.diff(dim=1) <= 0).all()  # descending
