"""The pretrained detector and the box-supervised seg head as bi-level tasks: CenterNet targets
against the detector's own decode, its loss on real pairs, and a real tiny training + export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from training.bilevel import fuse
from training.config import ConfigError, load_config
from training.data.collate import collate
from training.data.split import training_set
from training.export import export_checkpoint, load_detector
from training.losses.centernet import CenterNetLossConfig, centernet_loss, centernet_targets
from training.models.centernet import STRIDE, decode
from training.models.seg_classes import SEG_CLASSES
from training.paths import CENTERNET, REPO_ROOT
from training.tasks import DetectionTask, fused_detector
from training.train import CKPT_NAME, train

TINY_DETECTION = REPO_ROOT / "training" / "configs" / "tiny_detection.yaml"
needs_detector = pytest.mark.skipif(
    not CENTERNET.is_file(), reason=f"pretrained detector missing: {CENTERNET}"
)


def test_targets_decode_back_to_their_boxes() -> None:
    boxes = torch.tensor([[10.0, 20.0, 50.0, 100.0], [70.0, 8.0, 120.0, 40.0], [3.0, 90.0, 30.0, 127.0]])
    labels = torch.tensor([0, 2, 0])
    heatmap, centre, distances = centernet_targets(boxes, labels, 3, (32, 32), 0.7)
    assert heatmap.shape == (3, 32, 32) and int((heatmap == 1).sum()) == 3
    assert (heatmap[0] > 0).sum() > 2 and heatmap[1].sum() == 0  # Gaussian blobs, only where boxes are
    wh = torch.zeros(1, 4, 32, 32)
    wh[0, :, centre[:, 1], centre[:, 0]] = distances.T
    found = decode(heatmap[None], wh, top_k=3)[0]  # the graph's own decode
    order = found[:, 0].argsort()
    np.testing.assert_allclose(found[order, :4], boxes[boxes[:, 0].argsort()], atol=1e-5)
    assert found[order, 4].tolist() == [1.0, 1.0, 1.0]
    assert found[order, 5].tolist() == labels[boxes[:, 0].argsort()].float().tolist()
    assert (centre * STRIDE <= boxes[:, 2:]).all() and (distances >= 0).all()


def test_loss_is_zero_only_for_the_target_and_checks_labels() -> None:
    boxes, labels = [torch.tensor([[8.0, 8.0, 40.0, 56.0]])], [torch.tensor([1])]
    heatmap, centre, distances = centernet_targets(boxes[0], labels[0], 2, (16, 16), 0.7)
    wh = torch.zeros(1, 4, 16, 16)
    wh[0, :, centre[:, 1], centre[:, 0]] = distances.T
    perfect = centernet_loss(heatmap[None], wh, boxes, labels, CenterNetLossConfig())
    wrong = centernet_loss(heatmap[None].flip(-1), wh.flip(-1), boxes, labels, CenterNetLossConfig())
    assert float(perfect["size"]) == 0 and float(wrong["size"]) > 0.5
    # The focal loss's minimum is near, not at, the Gaussian target (its negatives are down-weighted).
    assert float(perfect["heatmap"]) < 0.1 * float(wrong["heatmap"])
    with pytest.raises(Exception, match="outside the detector's 2 classes"):
        centernet_targets(boxes[0], torch.tensor([2]), 2, (16, 16), 0.7)


@needs_detector
def test_pretrained_detector_loss_is_low_on_real_pairs_and_high_on_blank_ones(data_dir: Path) -> None:
    cfg = load_config(TINY_DETECTION, ["labelled.crop_size=[256, 256]", "labelled.long_side=512"])
    torch.manual_seed(0)
    samples = training_set(cfg.labelled.transform(cfg.data.train_transform()))
    batch = collate([samples[i] for i in range(4)])
    task = DetectionTask(fused_detector(load_detector(), cfg.labelled.crop_size), None, cfg.detection)
    assert task.parameters() == []  # frozen: no lower level
    real = task.upper_loss({"bgr": batch["visible"]}, batch)
    blank = task.upper_loss({"bgr": torch.full_like(batch["visible"], 0.5)}, batch)
    assert float(real["total"]) < 0.7 * float(blank["total"])


def test_labelled_crop_and_task_list_are_checked() -> None:
    with pytest.raises(ConfigError, match="multiples of 32"):
        load_config(TINY_DETECTION, ["labelled.crop_size=[100, 128]"])
    with pytest.raises(ConfigError, match="twice"):
        load_config(TINY_DETECTION, ["bilevel.tasks=[detection, detection]"])
    with pytest.raises(ConfigError, match=r"bilevel\.tasks"):
        load_config(TINY_DETECTION, ["bilevel.tasks=[detector]"])


@needs_detector
def test_tiny_detection_driven_training_learns_and_exports(data_dir: Path, tmp_path: Path) -> None:
    roadscene = (data_dir / "roadscene").resolve()
    cfg = load_config(
        TINY_DETECTION,
        [
            f"data.fusion_train=[{{kind: paired, root: {roadscene}}}]",
            f"train.out_dir={tmp_path}",
            "data.cache_mb=0",
        ],
    )
    result = train(cfg)
    history = result.history
    assert len(history) == cfg.train.max_steps
    for key in ("detection/upper/heatmap", "detection/lower/total", "segmentation/lower/projection"):
        assert all(np.isfinite(h[key]) for h in history)
    assert any(abs(h["detection/implicit_coef"]) > 0 for h in history)  # the head's hypergradient

    # On one fixed batch of the labelled training part: the fine-tuned head and the trained seg head
    # beat their starting points (the pretrained head; a fresh seg head).
    torch.manual_seed(1)
    samples = training_set(cfg.labelled.transform(cfg.data.train_transform()))
    batch = collate([samples[i] for i in range(4)])
    fusion = result.models["fusion"]
    assert fusion is not None
    with torch.no_grad():
        fused = fuse(fusion.eval(), batch, cfg.fusion_loss)
    assert torch.isfinite(fused["bgr"]).all() and fused["bgr"].min() >= 0 and fused["bgr"].max() <= 1
    assert fused["y"].std() > 0.01  # an image, not a constant
    detector = result.models["detector"]
    assert detector is not None
    crop = cfg.labelled.crop_size
    with torch.no_grad():
        tuned = DetectionTask(fused_detector(detector, crop), None, cfg.detection).lower_loss(
            dict(fused), batch
        )
        start = DetectionTask(fused_detector(load_detector(), crop), None, cfg.detection).lower_loss(
            dict(fused), batch
        )
    assert float(tuned["total"]) < float(start["total"])
    seg_losses = [h["segmentation/lower/total"] for h in history]
    assert np.mean(seg_losses[-3:]) < np.mean(seg_losses[:3])

    # The checkpoint exports: the fine-tuned detector and the seg head are in the graph.
    ckpt = torch.load(tmp_path / CKPT_NAME, weights_only=True)
    assert ckpt["models"]["detector"] is not None and ckpt["models"]["seg_head"] is not None
    out, report = export_checkpoint(
        tmp_path / CKPT_NAME, tmp_path / "det.onnx", input_size=(96, 128), detector_size=128
    )
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["seg_class_names"]) == list(SEG_CLASSES) and meta["segmentation_trained"] == "true"
    assert "with detection (head fine-tuned), segmentation" in meta["description"]
    assert report["detections_match"]


def test_detection_ablations_differ_only_in_the_task_settings() -> None:
    configs = REPO_ROOT / "training" / "configs"
    runs = {
        name: load_config(configs / f"detection_cpu{name}.yaml")
        for name in ("", "_fusion_only", "_frozen", "_head")
    }
    for cfg in runs.values():
        assert (cfg.train.init_from, cfg.train.max_steps, cfg.optim.fusion_lr, cfg.train.batch_size) == (
            "runs/shipped/ckpt.pt",
            runs[""].train.max_steps,
            runs[""].optim.fusion_lr,
            runs[""].train.batch_size,
        )
    assert runs["_fusion_only"].bilevel.mode == "fusion_only"
    assert runs[""].bilevel.tasks == ["detection", "segmentation"] and runs["_frozen"].bilevel.tasks == [
        "detection"
    ]
    assert [runs[n].detection.finetune_head for n in ("", "_frozen", "_head")] == [False, False, True]
    pull = {
        n: runs[n].bilevel.task_weights["detection"] * runs[n].detection.weight
        for n in ("", "_frozen", "_head")
    }
    assert len(set(pull.values())) == 1  # the same λ on θ in every detection run
