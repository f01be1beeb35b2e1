"""The exported inference graph: fusion → the pretrained CenterNet on the fused image (+ segmentation).

uint8 IR + BGR visible in, the contract's six outputs (docs/model_contract.md) out. The detector
is the frozen COCO CenterNet (docs/detector.md): it sees the fused image as upstream's evaluation
fed it (RGB, raw 0..255, bilinear resize), at a fixed size chosen at export that keeps the model's
aspect ratio. Its max-pool peak decode is its NMS: the graph applies no IoU NMS (the runtime's
class-wise NMS runs on top). A ``SegHead`` segmenter reads the detector's stride-4 feature of that
same pass (docs/segmentation.md), so segmentation costs only the head.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from training.models.centernet import INPUT_MULTIPLE, CenterNet, check_input_size
from training.models.color import bgr_to_ycrcb, ycrcb_to_bgr
from training.models.seghead import SegHead
from training.models.semantic import SemanticNet


def detector_input_size(input_size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(height, width) for the detector: longer side ``long_side``, aspect of ``input_size`` kept,
    each side rounded to a multiple of 32 (640×480 at 512 → 384×512)."""
    check_input_size(long_side, long_side)
    scale = long_side / max(input_size)
    h, w = (max(1, round(side * scale / INPUT_MULTIPLE)) * INPUT_MULTIPLE for side in input_size)
    return h, w


class FusedImageDetector(nn.Module):
    """uint8 BGR [N,3,H,W] → ``features`` (the stride-4 feature, which a SegHead shares) → ``decode``
    → (boxes [N,K,4] in H×W pixels, scores [N,K], classes [N,K], num [N]).

    K = the detector's top-K; rows at or below ``score_threshold`` (the sorted tail) are zero.
    """

    def __init__(self, detector: CenterNet, size: tuple[int, int], *, score_threshold: float) -> None:
        super().__init__()
        check_input_size(*size)
        self.detector = detector
        self.size = size
        self.score_threshold = score_threshold

    def features(self, fused: torch.Tensor) -> torch.Tensor:
        """uint8 BGR [N,3,H,W] → the detector's stride-4 feature at ``size`` (what a SegHead reads)."""
        rgb = fused.flip(1).float()  # raw 0..255, as the graph was trained
        return self.detector.features(
            F.interpolate(rgb, size=self.size, mode="bilinear", align_corners=False)
        )

    def decode(
        self, feature: torch.Tensor, height: int | torch.Tensor, width: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stride-4 feature → detections in ``height``×``width`` pixels (tensors while tracing:
        H, W stay dynamic)."""
        det = self.detector.detect(feature)[0]
        det = det.float()  # under fp16/bf16 autocast too: the contract's boxes and scores are float32
        det_h, det_w = self.size
        # Normalise, clip to the image, scale to the input size (per axis: the aspect may differ).
        norm = (det[..., :4] / torch.tensor([det_w, det_h, det_w, det_h], dtype=det.dtype)).clamp(0, 1)
        boxes = torch.stack(
            [norm[..., 0] * width, norm[..., 1] * height, norm[..., 2] * width, norm[..., 3] * height], dim=2
        )
        keep = det[..., 4] > self.score_threshold  # top-K is sorted: a prefix
        scores = det[..., 4] * keep
        classes = det[..., 5].to(torch.int64) * keep
        return boxes * keep[..., None], scores, classes, keep.sum(1)


class InferenceGraph(nn.Module):
    """uint8 ``ir`` [N,1,H,W] + uint8 BGR ``visible`` [N,3,H,W] -> the contract's six outputs.

    ``segmenter``: a trained ``SegHead`` on the detector's feature (argmax at the detector's size,
    nearest-resized to H×W), a trained semantic net whose segmentation head is exported (its own
    detection head never is: the pretrained detector replaces it), or None: the segmentation output
    is then zeros (an untrained head costs nothing per frame).
    """

    def __init__(
        self, fusion: nn.Module, detector: FusedImageDetector, segmenter: SegHead | SemanticNet | None = None
    ) -> None:
        super().__init__()
        self.fusion = fusion
        self.detector = detector
        self.segmenter = segmenter

    def forward(self, ir: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, ...]:
        fused = self.fuse(ir, visible)
        return (fused, *self.tasks(fused))

    def fuse(self, ir: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """The fused BGR image as the graph outputs it, uint8 [N, 3, H, W]."""
        ycrcb = bgr_to_ycrcb(visible.float() / 255.0)  # [N, 3, H, W]
        fused_y = self.fusion(ir.float() / 255.0, ycrcb[:, :1])  # [N, 1, H, W]
        bgr = ycrcb_to_bgr(torch.cat([fused_y, ycrcb[:, 1:]], dim=1))
        return (bgr * 255.0).round().clamp(0, 255).to(torch.uint8)

    def tasks(self, fused: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(boxes, scores, classes, num, segmentation) of a uint8 fused image: the task nets see
        exactly what the uint8 output represents, so torch and ORT can be compared on one input."""
        height, width = fused.shape[2], fused.shape[3]  # tensors while tracing: H, W stay dynamic
        feature = self.detector.features(fused)  # one detector pass for detections and a SegHead
        boxes, scores, classes, num = self.detector.decode(feature, height, width)
        if self.segmenter is None:
            seg = torch.zeros_like(fused[:, 0])
        elif isinstance(self.segmenter, SegHead):
            ids = self.segmenter(feature, self.detector.size).argmax(1, keepdim=True).to(torch.uint8)
            seg = F.interpolate(ids, size=(height, width), mode="nearest")[:, 0]
        else:
            logits = self.segmenter(fused.float() / 255.0)["seg"]
            seg = cast(torch.Tensor, logits).argmax(1).to(torch.uint8)
        return boxes, scores, classes, num, seg
