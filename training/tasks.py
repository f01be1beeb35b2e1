"""The pretrained detector and the box-supervised seg head as tasks of the bi-level trainer.

Both read the fused image the way the exported graph does: ``FusedImageDetector.features`` on the
fused BGR scaled to 0..255 (the graph rounds it to uint8 first; training keeps it continuous so
gradients reach θ). Batches come from the training part of the fixed labelled split
(training/data/split.py), resized so the longer side is the detector's in the exported graph and
then cropped: boxes in crop pixels are detector-input pixels.

- ``DetectionTask``: the COCO CenterNet's loss (training/losses/centernet.py) against the GT boxes.
  Frozen (no ω, upper level only: λ·loss joins F_k) or with its cls/wh output convs fine-tuned
  as the lower level (ω = those convs, the hypergradient's implicit term applies).
- ``SegmentationTask``: the design note's semantic constraint with box supervision: ω = a SegHead
  on the detector's stride-4 feature, f = the BoxInst-style losses (training/losses/boxseg.py) on
  the GT boxes, upper term = λ·f, so the fusion net is shaped by it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from training.bilevel import Fused, Losses, LowerTask
from training.data.collate import Batch
from training.data.transforms import FitLongSide, TrainTransform
from training.export import DETECTOR_SIZE, SCORE_THRESHOLD
from training.losses.boxseg import (
    LOSS_STRIDE,
    BoxSegLossConfig,
    box_seg_loss,
    lab_ir_guide,
    similar_edges,
    warm_prior,
)
from training.losses.centernet import CenterNetLossConfig, centernet_loss
from training.losses.errors import LossError
from training.models.centernet import CenterNet
from training.models.inference import FusedImageDetector
from training.models.seg_classes import seg_ids_of_road
from training.models.seghead import SegHead, SegHeadConfig
from training.paths import CENTERNET


@dataclass
class LabelledConfig:
    """The labelled split's training batches: resized to ``long_side`` (the exported graph's
    detector scale), then the experiment's augmentation with this ``crop_size`` (multiples of 32)."""

    long_side: int = DETECTOR_SIZE
    crop_size: tuple[int, int] = (256, 256)

    def __post_init__(self) -> None:
        if self.long_side < 32 or min(self.crop_size) < 32 or any(s % 32 for s in self.crop_size):
            raise LossError(f"labelled: crop sides must be multiples of 32 and long_side >= 32, got {self}")

    def transform(self, augment: TrainTransform) -> FitLongSide:
        """``augment`` (the experiment's) with this crop size, after the long-side resize."""
        return FitLongSide(self.long_side, replace(augment, crop_size=self.crop_size))


@dataclass
class DetectionTaskConfig:
    """The pretrained CenterNet on the fused image (YAML section ``detection``).

    ``finetune_head``: its cls/wh output convs are the lower-level ω (AdamW at ``lr``); else it is
    frozen and an upper-level term only. ``weight`` is λ of λ·CenterNet loss in F_k.
    """

    weights: str = str(CENTERNET)
    finetune_head: bool = False
    weight: float = 1.0
    lr: float = 1e-4
    loss: CenterNetLossConfig = field(default_factory=CenterNetLossConfig)


@dataclass
class SegmentationTaskConfig:
    """The box-supervised SegHead on the detector's feature (YAML section ``segmentation``)."""

    head: SegHeadConfig = field(default_factory=SegHeadConfig)
    loss: BoxSegLossConfig = field(default_factory=BoxSegLossConfig)
    weight: float = 0.1
    lr: float = 1e-2


def fused_detector(detector: CenterNet, crop_size: tuple[int, int]) -> FusedImageDetector:
    """The exported graph's detector stage at the training crop size (its resize is then the identity)."""
    return FusedImageDetector(detector, crop_size, score_threshold=SCORE_THRESHOLD)


def _features(detector: FusedImageDetector, fused: Fused) -> torch.Tensor:
    """The detector's stride-4 feature of the fused image, kept in ``fused``: the upper term and
    the hypergradient's lower loss read the same fused image, so the detector runs once for both."""
    if "feature" in fused:
        return fused["feature"]
    size = tuple(fused["bgr"].shape[-2:])
    if size != detector.size:
        raise LossError(
            f"task batch of {size} pixels, the detector runs at {detector.size}: set labelled.crop_size"
        )
    fused["feature"] = detector.features(fused["bgr"] * 255.0)
    return fused["feature"]


def head_parameters(detector: CenterNet) -> list[torch.nn.Parameter]:
    """The cls and wh output convs: what ``finetune_head`` trains."""
    return [*detector.head.cls.parameters(), *detector.head.wh.parameters()]


class _OnDetectorFeature(LowerTask):
    """A task reading the detector's feature of the fused image; upper term = ``cfg.weight`` × f."""

    def __init__(
        self,
        name: str,
        module: torch.nn.Module,
        detector: FusedImageDetector,
        optimizer: torch.optim.Optimizer | None,
        cfg: DetectionTaskConfig | SegmentationTaskConfig,
    ) -> None:
        super().__init__(name, module, optimizer)
        self.detector = detector
        self.weight = cfg.weight

    def upper_loss(self, fused: Fused, batch: Batch) -> Losses:
        terms = self.lower_loss(fused, batch)
        return {**terms, "total": self.weight * terms["total"]}


class DetectionTask(_OnDetectorFeature):
    """CenterNet loss of the detector on the fused image (module docstring)."""

    def __init__(
        self, detector: FusedImageDetector, optimizer: torch.optim.Optimizer | None, cfg: DetectionTaskConfig
    ) -> None:
        super().__init__("detection", detector.detector, detector, optimizer, cfg)
        self.loss_cfg = cfg.loss

    def lower_loss(self, fused: Fused, batch: Batch) -> Losses:
        out = self.detector.detector.detect(_features(self.detector, fused))
        return centernet_loss(out.keypoints, out.wh, batch["boxes"], batch["labels"], self.loss_cfg)


class SegmentationTask(_OnDetectorFeature):
    """Box-supervised SegHead on the detector's feature of the fused image (module docstring).

    Losses at 1/LOSS_STRIDE of the crop, as training/train_seg.py computes them; the affinity guide
    is the fused image (what the head sees) in Lab plus the IR.
    """

    def __init__(
        self,
        head: SegHead,
        detector: FusedImageDetector,
        optimizer: torch.optim.Optimizer,
        cfg: SegmentationTaskConfig,
    ) -> None:
        super().__init__("segmentation", head, detector, optimizer, cfg)
        self.loss_cfg = cfg.loss

    def lower_loss(self, fused: Fused, batch: Batch) -> Losses:
        h, w = (s // LOSS_STRIDE for s in fused["bgr"].shape[-2:])
        logits = self.module(_features(self.detector, fused), (h, w))
        ir = F.interpolate(batch["ir"].float(), size=(h, w), mode="area")
        bgr = F.interpolate(fused["bgr"].detach().float(), size=(h, w), mode="area")
        classes = [torch.from_numpy(seg_ids_of_road(lab.cpu().numpy())) for lab in batch["labels"]]
        return box_seg_loss(
            logits,
            [b / LOSS_STRIDE for b in batch["boxes"]],
            classes,
            similar_edges(lab_ir_guide(bgr, ir), self.loss_cfg),
            warm_prior(ir, self.loss_cfg),
            self.loss_cfg,
        )
