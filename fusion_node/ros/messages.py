"""Pipeline results -> rclpy messages; every output takes the visible frame's header."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, LabelInfo, ObjectHypothesisWithPose, VisionClass

from fusion_node.pipeline import Detection, numpy_to_image_fields


def image_msg(image: np.ndarray, encoding: str, header: Header, *, reuse: Image | None = None) -> Image:
    """A sensor_msgs/Image of `image` ("bgr8" H×W×3 or "mono8" H×W) with `header`.

    `reuse`: a message already published (rclpy publishes synchronously), refilled and returned;
    its pixel array is kept when the size fits, so a steady stream allocates no image memory.
    `data` is set after construction: the constructor would copy the pixel array once more.
    """
    fields = numpy_to_image_fields(image, encoding, reuse=reuse.data if reuse is not None else None)
    data = fields.pop("data")
    msg = Image(header=header, **fields) if reuse is None else reuse
    if reuse is not None:
        msg.header = header
        for name, value in fields.items():
            setattr(msg, name, value)
    if msg.data is not data:
        msg.data = data
    return msg


def detections_msg(detections: Sequence[Detection], header: Header) -> Detection2DArray:
    """A Detection2DArray: box centre and size in visible pixels, the class INDEX (as a string) as
    class_id, as vision_msgs 4.x has it; ~/label_info maps indices to names (`label_info_msg`).

    `id` stays empty (the message's "no track id") and each hypothesis' pose stays identity: the
    detector neither tracks nor knows 3D poses. Same fields as the replay's bags.
    """
    out = Detection2DArray(header=header)
    for det in detections:
        x1, y1, x2, y2 = det.box
        item = Detection2D(header=header)
        item.bbox.center.position.x = (x1 + x2) / 2.0
        item.bbox.center.position.y = (y1 + y2) / 2.0
        item.bbox.size_x = float(x2 - x1)
        item.bbox.size_y = float(y2 - y1)
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = str(det.class_id)
        hypothesis.hypothesis.score = float(det.score)
        item.results.append(hypothesis)
        out.detections.append(item)
    return out


def label_info_msg(class_names: Sequence[str], header: Header, threshold: float) -> LabelInfo:
    """A vision_msgs/LabelInfo: class index -> name, and the score threshold in use (0: none)."""
    class_map = [VisionClass(class_id=index, class_name=name) for index, name in enumerate(class_names)]
    return LabelInfo(header=header, class_map=class_map, threshold=threshold)


def diagnostics_msg(
    header: Header, name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, object]
) -> DiagnosticArray:
    """A DiagnosticArray with one status; floats are written with three decimals."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id)
    status.values = [
        KeyValue(key=key, value=f"{value:.3f}" if isinstance(value, float) else str(value))
        for key, value in values.items()
    ]
    return DiagnosticArray(header=header, status=[status])
