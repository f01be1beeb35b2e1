"""The segmentation head on the detector's stride-4 feature, and a tiny real training of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.data.sample import Pair
from training.losses.boxseg import BoxSegLossConfig, lab_ir_guide, similar_edges, warm_prior
from training.models.centernet import FEATURE_CHANNELS, ROAD_CLASSES, CenterNet
from training.models.seg_classes import SEG_CLASSES
from training.models.seghead import DetectorWithSeg, SegHead, SegHeadConfig
from training.seg_config import SegTrainConfig
from training.train_seg import Example, head_predictor, input_size, train_head

PERSON = SEG_CLASSES.index("person")


@pytest.fixture(scope="module")
def model() -> DetectorWithSeg:
    torch.manual_seed(0)
    return DetectorWithSeg(CenterNet(ROAD_CLASSES), SegHead(SegHeadConfig(width=16)))


def test_one_detector_pass_gives_detections_and_seg_logits(model: DetectorWithSeg) -> None:
    images = torch.rand(2, 3, 64, 96) * 255
    detections, logits = model(images)
    assert logits.shape == (2, len(SEG_CLASSES), 64, 96)
    with torch.no_grad():
        alone = model.detector(images)
    torch.testing.assert_close(detections.detections, alone.detections)  # the detector is unchanged
    assert model.detector.features(images).shape == (2, FEATURE_CHANNELS, 16, 24)


def test_only_the_head_trains(model: DetectorWithSeg) -> None:
    model.train()
    assert not model.detector.training  # frozen, even in train mode
    _, logits = model(torch.rand(1, 3, 32, 32) * 255)
    logits.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    assert all(p.grad is None for p in model.detector.parameters())
    model.head.zero_grad()


def test_input_size_keeps_the_aspect_on_multiples_of_32() -> None:
    assert input_size((330, 500), 384) == (256, 384)
    assert input_size((768, 1024), 384) == (288, 384)
    assert input_size((10, 2000), 384) == (32, 384)


def test_tiny_real_training_learns_the_object_from_boxes() -> None:
    """A feature that marks an object: 40 steps of box losses put the person class on it only."""
    torch.manual_seed(0)
    h, w = 32, 48  # loss resolution = feature (stride 4) × 2
    feature = torch.randn(FEATURE_CHANNELS, h // 2, w // 2) * 0.1
    obj = torch.zeros(h, w, dtype=torch.bool)
    obj[8:24, 12:20] = True
    feature[0] += obj[::2, ::2].float() * 2.0
    ir = torch.where(obj, 0.9, 0.3)[None]
    guide = lab_ir_guide(torch.where(obj, 0.7, 0.2).expand(1, 3, h, w), ir[None])[0]
    loss_cfg = BoxSegLossConfig()
    box, cls = torch.tensor([[12.0, 8.0, 20.0, 24.0]]), torch.tensor([PERSON])
    edges, warm = similar_edges(guide[None], loss_cfg)[0], warm_prior(ir[None], loss_cfg)[0]
    example = Example(feature.to(torch.bfloat16), box, cls, edges, warm)
    run_cfg = SegTrainConfig(steps=40, batch_size=1, lr=3e-2, log_interval=39)
    head, log = train_head(run_cfg, SegHeadConfig(width=16), loss_cfg, [example])
    assert log[-1]["total"] < 0.5 * log[0]["total"]
    with torch.no_grad():
        pred = head(feature[None].float(), (h, w))[0].argmax(0)
    inside, outside = (pred[obj] == PERSON).float().mean(), (pred[~obj] == PERSON).float().mean()
    assert inside > 0.8 and outside < 0.1


def test_predictor_returns_class_ids_at_the_pair_size(model: DetectorWithSeg) -> None:
    rng = np.random.default_rng(0)
    pair = Pair(rng.random((50, 70), np.float32), rng.random((50, 70, 3), np.float32),
                np.zeros((0, 4), np.float32), np.zeros(0, np.int64), None, "p")  # fmt: skip
    pred = head_predictor(model.eval(), 64)(pair)
    assert pred.shape == (50, 70) and pred.dtype == np.uint8 and pred.max() < len(SEG_CLASSES)
