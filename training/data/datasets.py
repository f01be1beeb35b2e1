"""Torch datasets for the supported layouts; all yield the same sample dict (see `to_sample`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fusion_node.pipeline.pair_files import PairFolderError, match_pairs
from training.data.classes import ClassMap
from training.data.coco import read_coco
from training.data.errors import DataError
from training.data.images import read_mask, read_pair
from training.data.sample import Pair, empty_boxes, to_sample
from training.data.voc import read_voc
from training.data.yolo import read_yolo, yolo_to_xyxy

log = logging.getLogger(__name__)

Transform = Callable[[Pair, np.random.Generator], Pair]
Objects = Sequence[tuple[str, tuple[float, float, float, float]]]
MSRS_DETECTION_CLASSES = ("person", "bicycle", "car")  # class ids of the MSRS-detection-label files


@dataclass(frozen=True)
class Entry:
    """Where one pair lives and its parsed labels (boxes normalised cx,cy,w,h when `normalised`)."""

    name: str
    ir: Path
    vi: Path
    labels: np.ndarray
    boxes: np.ndarray
    normalised: bool = False
    mask: Path | None = None


class PairDataset(Dataset[dict[str, Any]]):
    """Base of every layout: loads an entry, applies the joint transform, returns tensors."""

    def __init__(
        self, entries: list[Entry], *, transform: Transform | None = None, num_seg_classes: int | None = None
    ) -> None:
        if not entries:
            raise DataError(f"{type(self).__name__} found no image pairs: check the root, split and folders")
        self.entries = entries
        self.transform = transform
        self.num_seg_classes = num_seg_classes
        self.decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # filled by data/cache.py

    @property
    def names(self) -> list[str]:
        """Pair names in index order (used for train/val splits)."""
        return [e.name for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(ir uint8 H×W, visible uint8 H×W×3 BGR) at `index`, from memory when cached."""
        cached = self.decoded.get(index)
        return cached if cached is not None else read_pair(self.entries[index].ir, self.entries[index].vi)

    def load(self, index: int) -> Pair:
        """The untransformed pair at `index`, boxes in pixels."""
        entry = self.entries[index]
        ir, visible = (a.astype(np.float32) / 255.0 for a in self.decode(index))
        height, width = ir.shape
        boxes = yolo_to_xyxy(entry.boxes, width, height) if entry.normalised else entry.boxes
        mask = None if entry.mask is None else read_mask(entry.mask, (height, width), self.num_seg_classes)
        return Pair(ir, visible, boxes, entry.labels, mask, entry.name)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.load(index)
        if self.transform is not None:
            # Seeded from torch's RNG: DataLoader reseeds it per worker and per epoch, so augmentation
            # is reproducible under torch.manual_seed and differs between workers and epochs.
            seed = int(torch.randint(0, 2**62, ()).item())
            pair = self.transform(pair, np.random.default_rng(seed))
        return to_sample(pair)


def _match_pairs(ir_dir: Path, vi_dir: Path) -> list[tuple[str, Path, Path]]:
    """(name, ir path, visible path) of the runtime's pairing rule; unpartnered images are skipped."""
    try:
        return [(p.name, p.ir, p.visible) for p in match_pairs(ir_dir, vi_dir)]
    except PairFolderError as err:
        raise DataError(str(err)) from err


def _map_classes(names: Sequence[str], boxes: np.ndarray, classes: ClassMap) -> tuple[np.ndarray, np.ndarray]:
    """(labels int64 [M'], boxes float32 [M',4]) of the boxes whose class name maps to class_names."""
    mapped = [classes(name) for name in names]
    keep = np.array([m is not None for m in mapped], bool)
    labels = np.array([m for m in mapped if m is not None], np.int64)
    return labels, np.asarray(boxes, np.float32).reshape(-1, 4)[keep]


def _objects_entry(name: str, ir: Path, vi: Path, objects: Objects, classes: ClassMap) -> Entry:
    labels, boxes = _map_classes([o[0] for o in objects], np.array([o[1] for o in objects]), classes)
    return Entry(name, ir, vi, labels, boxes)


def _unlabelled(name: str, ir: Path, vi: Path) -> Entry:
    boxes, labels = empty_boxes()
    return Entry(name, ir, vi, labels, boxes)


def _require_split(dataset: str, split: str | None) -> str:
    if not split:
        raise DataError(f"{dataset} needs a split (e.g. 'train' or 'test'): set `split` in the data config")
    return split


class PairedFolderDataset(PairDataset):
    """Unlabelled aligned pairs `root/ir_dir/NAME.*` + `root/vi_dir/NAME.*` (TNO, RoadScene)."""

    def __init__(
        self, root: str | Path, ir_dir: str = "ir", vi_dir: str = "vi", *, transform: Transform | None = None
    ) -> None:
        root = Path(root)
        pairs = _match_pairs(root / ir_dir, root / vi_dir)
        super().__init__([_unlabelled(*p) for p in pairs], transform=transform)


class MSRSDataset(PairDataset):
    """MSRS: `root/{split}/{ir,vi,Segmentation_labels}/NAME.png`, optional YOLO labels in `labels_dir`.

    Masks are read when `Segmentation_labels` exists; boxes when `labels_dir` and `class_names` are
    given (YOLO class ids are named by `label_class_names`, then mapped like any other class name).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None,
        *,
        class_names: Sequence[str] | None = None,
        name_map: Mapping[str, str] | None = None,
        labels_dir: str | Path | None = None,
        label_class_names: Sequence[str] = MSRS_DETECTION_CLASSES,
        num_seg_classes: int | None = None,
        transform: Transform | None = None,
    ) -> None:
        base = Path(root) / _require_split("MSRS", split)
        mask_dir = base / "Segmentation_labels"
        classes = ClassMap(class_names or (), name_map)
        entries = []
        for name, ir, vi in _match_pairs(base / "ir", base / "vi"):
            boxes, labels = empty_boxes()
            mask = mask_dir / f"{name}.png" if mask_dir.is_dir() else None
            if mask is not None and not mask.is_file():
                raise DataError(f"MSRS pair {name} has no mask {mask}: add it or remove the pair")
            label_file = Path(labels_dir) / f"{name}.txt" if labels_dir is not None else None
            if class_names is not None and label_file is not None and label_file.is_file():
                ids, boxes = read_yolo(label_file)
                if ids.size and (ids.min() < 0 or ids.max() >= len(label_class_names)):
                    raise DataError(
                        f"{label_file}: a class id is outside 0..{len(label_class_names) - 1}: "
                        "set label_class_names to the names of the file's ids"
                    )
                labels, boxes = _map_classes([label_class_names[i] for i in ids], boxes, classes)
            # YOLO boxes stay normalised until load() knows the image size (no image read at init).
            entries.append(Entry(name, ir, vi, labels, boxes, normalised=True, mask=mask))
        classes.report(f"MSRS {base}")
        super().__init__(entries, transform=transform, num_seg_classes=num_seg_classes)


class M3FDDataset(PairDataset):
    """M3FD in its official layout (`Ir/`, `Vis/`, `Annotation/NAME.xml`) or the COCO-JSON form.

    The COCO form (`annotations/m3fd-{split}.json`, `ir/`, `vi/`) is chosen when `split` is given;
    it keeps the listed images that exist on disk. In the official layout every pair is used
    (split it with the data config's `val_names`/`exclude_names`); a missing XML means no boxes.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        class_names: Sequence[str] | None = None,
        name_map: Mapping[str, str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        root = Path(root)
        classes = ClassMap(class_names or (), name_map)
        if split:
            objects = read_coco(root / "annotations" / f"m3fd-{split}.json")
            pairs = {name: (ir, vi) for name, ir, vi in _match_pairs(root / "ir", root / "vi")}
            listed = {Path(f).stem: objs for f, objs in objects.items()}
            entries = [
                _objects_entry(name, *pairs[name], objs if class_names is not None else [], classes)
                for name, objs in sorted(listed.items())
                if name in pairs
            ]
            log.info("M3FD %s: %d of %d listed pairs found on disk", split, len(entries), len(listed))
        elif (root / "Ir").is_dir():
            entries = [
                _objects_entry(
                    name, ir, vi, _voc_objects(root / "Annotation" / f"{name}.xml", class_names), classes
                )
                for name, ir, vi in _match_pairs(root / "Ir", root / "Vis")
            ]
        else:
            raise DataError(
                f"{root} is neither the official M3FD layout (Ir/, Vis/, Annotation/) nor, "
                "with a split, the COCO form (annotations/m3fd-SPLIT.json, ir/, vi/)"
            )
        classes.report(f"M3FD {root}")
        super().__init__(entries, transform=transform)


class LLVIPDataset(PairDataset):
    """LLVIP: `infrared/{split}/NAME.jpg`, `visible/{split}/NAME.jpg`, `Annotations/NAME.xml` (VOC).

    Pairs without an annotation file are unlabelled (no boxes).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None,
        *,
        class_names: Sequence[str] | None = None,
        name_map: Mapping[str, str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        root = Path(root)
        split = _require_split("LLVIP", split)
        classes = ClassMap(class_names or (), name_map)
        entries = [
            _objects_entry(
                name, ir, vi, _voc_objects(root / "Annotations" / f"{name}.xml", class_names), classes
            )
            for name, ir, vi in _match_pairs(root / "infrared" / split, root / "visible" / split)
        ]
        classes.report(f"LLVIP {root}")
        super().__init__(entries, transform=transform)


def _voc_objects(path: Path, class_names: Sequence[str] | None) -> Objects:
    """The file's objects, or none when labels are not wanted or the pair has no annotation file."""
    return read_voc(path) if class_names is not None and path.is_file() else []
