"""Defaults that the node's parameters (ros/params.py, config/params.yaml), the `fusion-node` CLI
and the pipeline share: each is set here only. Plain values, importable without ROS or torch.
"""

from __future__ import annotations

from typing import Final

IR_TOPIC: Final = "ir/image_raw"  # relative: resolved in the node's namespace
VISIBLE_TOPIC: Final = "visible/image_raw"
SLOP_S: Final = 0.05  # largest stamp difference of an IR/visible pair, seconds
BACKEND: Final = "onnxruntime"
DEVICE: Final = "cpu"
THREADS: Final = 0  # CPU inference threads; 0 = ONNX Runtime's default
SCORE_THRESHOLD: Final = 0.35  # runtime filters on top of the graph's own
NMS_IOU_THRESHOLD: Final = 0.5
FIT: Final = "stretch"  # how another aspect ratio goes into the model input: stretch | letterbox
