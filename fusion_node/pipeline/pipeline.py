"""The runtime pipeline: AGC -> registration -> resize -> backend -> outputs in visible geometry."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from fusion_node import defaults
from fusion_node.pipeline import postprocess
from fusion_node.pipeline.agc import AgcConfig, AutoGain
from fusion_node.pipeline.backends import open_backend
from fusion_node.pipeline.errors import ImageError, PipelineError
from fusion_node.pipeline.images import require_pixels
from fusion_node.pipeline.letterbox import FITS, Fit, Placement
from fusion_node.pipeline.model import ModelInfo, default_model_path
from fusion_node.pipeline.registration import Registration
from fusion_node.pipeline.types import Result


@dataclass
class PipelineConfig:
    """Everything `FusionPipeline` needs; the node fills it from ROS parameters.

    Attributes:
        model_path: the .onnx (or TensorRT engine); None = `default_model_path()`.
        backend: "onnxruntime" or "tensorrt".
        device: "cpu", "auto", "cuda" or "cuda:N" (GPU N; see `parse_device`); TensorRT takes its GPU
            from it too.
        threads: ONNX Runtime's CPU threads (see OrtBackend).
        engine_cache_dir: TensorRT engine cache; None = ~/.cache/fusion_node/engines.
        score_threshold, nms_iou_threshold: runtime filters on top of the graph's own.
        homography: IR -> visible pixels (3×3 or 9 values); None = already registered.
        registration: instead of `homography`, e.g. from the cameras' calibration (calibration.py).
        input_size: (height, width) fed to the model; None = the model's metadata. Both must be
            multiples of the model's size_divisor.
        fit: how a visible image of another aspect ratio goes into input_size: "stretch" (fills
            it, distorting shapes) or "letterbox" (keeps the ratio, pads black); outputs are
            mapped back to visible pixels either way.
    """

    model_path: Path | None = None
    backend: Literal["onnxruntime", "tensorrt"] = defaults.BACKEND
    device: str = defaults.DEVICE
    threads: int = defaults.THREADS
    engine_cache_dir: Path | None = None
    score_threshold: float = defaults.SCORE_THRESHOLD
    nms_iou_threshold: float = defaults.NMS_IOU_THRESHOLD
    homography: np.ndarray | Sequence[float] | None = None
    registration: Registration | None = None
    agc: AgcConfig = field(default_factory=AgcConfig)
    input_size: tuple[int, int] | None = None
    fit: Fit = defaults.FIT


def _check_thresholds(score: float, nms_iou: float) -> None:
    if not 0.0 <= score <= 1.0:
        raise PipelineError(f"score threshold {score} must be in [0, 1]")
    if not 0.0 < nms_iou <= 1.0:
        raise PipelineError(f"NMS IoU threshold {nms_iou} must be in (0, 1]")


class FusionPipeline:
    """Fuses, detects and segments one IR + visible pair at a time.

    `process` keeps AGC state, so call it from one thread; `set_thresholds` may be called from
    any thread meanwhile.
    """

    def __init__(self, config: PipelineConfig | None = None) -> None:
        config = config or PipelineConfig()
        _check_thresholds(config.score_threshold, config.nms_iou_threshold)
        if config.fit not in FITS:
            raise PipelineError(f"fit {config.fit!r} is unknown; use one of {', '.join(FITS)}")
        self._fit = config.fit
        path = Path(config.model_path) if config.model_path is not None else default_model_path()
        if config.backend == "tensorrt":
            self._backend = open_backend(
                path, kind="tensorrt", cache_dir=config.engine_cache_dir, device=config.device
            )
        else:
            self._backend = open_backend(
                path, kind=config.backend, device=config.device, threads=config.threads
            )
        self.info = ModelInfo.from_metadata(self._backend.metadata, path)
        self.input_size = config.input_size or self.info.input_size
        if len(self.input_size) != 2 or any(s <= 0 or s % self.info.size_divisor for s in self.input_size):
            raise PipelineError(
                f"input_size {self.input_size} must be two positive multiples of the model's "
                f"size_divisor {self.info.size_divisor}; e.g. {self.info.input_size}"
            )
        height, width = self.input_size
        self._visible_in = np.empty((1, 3, height, width), np.uint8)  # reused: no allocation per pair
        self._agc = AutoGain(config.agc)
        self._registration = config.registration or Registration(config.homography)
        self._lock = threading.Lock()
        self._score = config.score_threshold
        self._nms_iou = config.nms_iou_threshold

    @property
    def backend_name(self) -> str:
        """The backend in use, e.g. "onnxruntime:CPUExecutionProvider"."""
        return self._backend.name

    @property
    def thresholds(self) -> tuple[float, float]:
        """(score, nms_iou) currently applied."""
        with self._lock:
            return self._score, self._nms_iou

    @property
    def registration(self) -> Registration:
        """The IR -> visible registration in use (its `source` says where it comes from)."""
        return self._registration

    def set_registration(self, registration: Registration) -> None:
        """Use `registration` from the next `process` on (e.g. once both CameraInfo arrived)."""
        self._registration = registration  # one reference swap: safe beside a running `process`

    def set_thresholds(self, score: float | None = None, nms_iou: float | None = None) -> None:
        """Change the runtime thresholds (None keeps one); takes effect on the next `process`.

        Raises:
            PipelineError: a value out of range; nothing is changed then.
        """
        with self._lock:
            new_score = self._score if score is None else float(score)
            new_nms = self._nms_iou if nms_iou is None else float(nms_iou)
            _check_thresholds(new_score, new_nms)
            self._score, self._nms_iou = new_score, new_nms

    def warmup(self) -> None:
        """Run the model once on blank inputs.

        The first real frame then does not pay for the backend's lazy set-up (ONNX Runtime
        arenas, TensorRT execution context), which would show as a latency spike on a robot.
        """
        height, width = self.input_size
        blank = np.zeros((1, 3, height, width), np.uint8)
        self._backend.infer(blank[:, :1], blank)

    def reset(self) -> None:
        """Forget temporal state (AGC window), e.g. after a time jump."""
        self._agc.reset()

    def process(self, ir: np.ndarray, visible: np.ndarray) -> Result:
        """Run one pair.

        Args:
            ir: H×W uint8/uint16/float32 (raw thermal is fine: AGC maps it), or H×W×3 (-> gray).
            visible: H×W×3 BGR uint8, or H×W mono uint8 (-> 3 channels).

        Raises:
            ImageError: unusable arrays (empty ones included).
            RegistrationError: sizes differ without a homography.
        """
        start = time.perf_counter()
        placement = Placement.of((visible.shape[0], visible.shape[1]), self.input_size, self._fit)
        ir_in, visible_in = self._prepare(ir, visible, placement)
        preprocessed = time.perf_counter()
        outputs = self._backend.infer(ir_in, visible_in)
        inferred = time.perf_counter()
        score, nms_iou = self.thresholds
        result_detections = postprocess.detections(
            outputs,
            self.info,
            placement=placement,
            score_threshold=score,
            nms_iou_threshold=nms_iou,
        )
        fused = postprocess.fused_image(outputs, placement)
        mask = postprocess.segmentation_mask(outputs, self.info, placement)
        done = time.perf_counter()
        timings = {
            "preprocess": (preprocessed - start) * 1e3,
            "inference": (inferred - preprocessed) * 1e3,
            "postprocess": (done - inferred) * 1e3,
            "total": (done - start) * 1e3,
        }
        return Result(fused=fused, detections=result_detections, segmentation=mask, timings_ms=timings)

    def _prepare(
        self, ir: np.ndarray, visible: np.ndarray, placement: Placement
    ) -> tuple[np.ndarray, np.ndarray]:
        """AGC, registration and resize (as `placement` says); (N×1×H×W, N×3×H×W) uint8 model inputs.

        The visible input is a buffer reused by the next call: the backend must not keep it.
        """
        require_pixels(ir.shape, "IR")
        require_pixels(visible.shape, "visible")
        if ir.ndim == 3 and ir.shape[2] == 3:
            ir = cv2.cvtColor(ir, cv2.COLOR_BGR2GRAY)
        if ir.ndim != 2:
            raise ImageError(f"IR image must be H×W or H×W×3, got shape {ir.shape}")
        if visible.dtype != np.uint8 or visible.ndim < 2 or visible.shape[2:] not in ((), (3,)):
            raise ImageError(
                f"visible image must be H×W×3 BGR or H×W mono uint8, got {visible.shape} {visible.dtype}"
            )
        if visible.ndim == 2:
            visible = cv2.cvtColor(visible, cv2.COLOR_GRAY2BGR)
        ir8 = self._registration.warp_ir(self._agc(ir), visible.shape)
        ir8, visible = placement.to_input(ir8), placement.to_input(visible)
        # HWC -> the model's CHW, written into the buffer's planes: 0.03 ms, a numpy transpose copy 0.2
        cv2.split(visible, list(self._visible_in[0]))
        return np.ascontiguousarray(ir8[None, None]), self._visible_in
