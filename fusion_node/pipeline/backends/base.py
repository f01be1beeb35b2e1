"""What every inference backend offers the pipeline."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    """Runs one model that follows docs/model_contract.md.

    Attributes:
        name: short backend name for logs ("onnxruntime:CPUExecutionProvider", "tensorrt:fp16:cuda:0").
        metadata: the model's metadata_props (strings), parsed by ModelInfo.from_metadata.
    """

    name: str
    metadata: dict[str, str]

    def infer(self, ir: np.ndarray, visible: np.ndarray) -> dict[str, np.ndarray]:
        """Run on ir (N×1×H×W uint8) and visible (N×3×H×W uint8); return outputs by contract name."""
        ...
