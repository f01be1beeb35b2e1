"""Model outputs (input geometry) -> results in the visible image's own geometry."""

from __future__ import annotations

import cv2
import numpy as np

from fusion_node.pipeline.errors import ModelError
from fusion_node.pipeline.letterbox import Placement
from fusion_node.pipeline.model import ModelInfo
from fusion_node.pipeline.types import Detection


def fused_image(outputs: dict[str, np.ndarray], placement: Placement) -> np.ndarray:
    """The first batch item's fused image as H×W×3 BGR uint8 at the visible size."""
    # cv2.merge interleaves the C×H×W planes: 0.03 ms at 640×480, a numpy transpose copy 0.9 ms.
    return placement.from_input(cv2.merge(list(outputs["fused"][0])), cv2.INTER_LINEAR)


def segmentation_mask(
    outputs: dict[str, np.ndarray], info: ModelInfo, placement: Placement
) -> np.ndarray | None:
    """Class ids at the visible size (nearest neighbour keeps ids valid), or None when untrained."""
    if not info.segmentation_trained:
        return None
    return placement.from_input(outputs["segmentation"][0], cv2.INTER_NEAREST)


def detections(
    outputs: dict[str, np.ndarray],
    info: ModelInfo,
    *,
    placement: Placement,
    score_threshold: float,
    nms_iou_threshold: float,
) -> list[Detection]:
    """The first batch item's detections in visible pixels, clipped to the image.

    Keeps scores >= `score_threshold`; runs class-wise NMS again only when `nms_iou_threshold` is
    stricter (lower) than the graph's own. Empty when the detection head is untrained.

    Raises:
        ModelError: a class id outside `info.class_names`.
    """
    if not info.detection_trained:
        return []
    count = int(outputs["num_detections"][0])
    boxes = outputs["boxes"][0, :count].astype(np.float32)
    scores = outputs["scores"][0, :count].astype(np.float32)
    classes = outputs["classes"][0, :count].astype(np.int64)
    keep = scores >= score_threshold
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    boxes = placement.boxes_from_input(boxes)
    if len(boxes) and nms_iou_threshold < info.nms_iou_threshold:
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        kept = cv2.dnn.NMSBoxesBatched(
            xywh.tolist(), scores.tolist(), classes.tolist(), score_threshold, nms_iou_threshold
        )
        order = np.asarray(kept, np.int64).reshape(-1)
        boxes, scores, classes = boxes[order], scores[order], classes[order]
    if len(classes) and (classes.min() < 0 or classes.max() >= len(info.class_names)):
        raise ModelError(
            f"model returned class ids {sorted(set(classes.tolist()))} but class_names has "
            f"{len(info.class_names)} entries; re-export the model with fusion-export"
        )
    return [
        Detection(
            box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            class_id=int(c),
            class_name=info.class_names[int(c)],
            score=float(s),
        )
        for b, s, c in zip(boxes, scores, classes, strict=True)
    ]
