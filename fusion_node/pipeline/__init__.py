"""ROS-free, torch-free runtime: image decoding, AGC, registration, pairing, inference, results.

The node, replay and benchmarks all import this package; it needs numpy, OpenCV and ONNX Runtime
(TensorRT and pycuda optionally, imported only when that backend is chosen).
"""

from __future__ import annotations

from fusion_node.pipeline.agc import AgcConfig, AutoGain
from fusion_node.pipeline.backends import Backend, open_backend
from fusion_node.pipeline.errors import (
    CalibrationError,
    ImageError,
    ModelError,
    PipelineError,
    RegistrationError,
)
from fusion_node.pipeline.images import (
    SUPPORTED_ENCODINGS,
    check_compressed,
    check_image,
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_image_fields,
)
from fusion_node.pipeline.model import ModelInfo, default_model_path
from fusion_node.pipeline.pairing import ApproximateTimePairer, PairingStats
from fusion_node.pipeline.pipeline import FusionPipeline, PipelineConfig
from fusion_node.pipeline.registration import Registration
from fusion_node.pipeline.types import Detection, Frame, Pair, Result
from fusion_node.pipeline.visualize import colorize, overlay, palette

__all__ = [
    "SUPPORTED_ENCODINGS",
    "AgcConfig",
    "ApproximateTimePairer",
    "AutoGain",
    "Backend",
    "CalibrationError",
    "Detection",
    "Frame",
    "FusionPipeline",
    "ImageError",
    "ModelError",
    "ModelInfo",
    "Pair",
    "PairingStats",
    "PipelineConfig",
    "PipelineError",
    "Registration",
    "RegistrationError",
    "Result",
    "check_compressed",
    "check_image",
    "colorize",
    "compressed_to_numpy",
    "default_model_path",
    "image_to_numpy",
    "numpy_to_image_fields",
    "open_backend",
    "overlay",
    "palette",
]
