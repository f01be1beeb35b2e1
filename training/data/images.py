"""Image reading with OpenCV: IR as grayscale, visible as BGR, masks as class ids."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fusion_node.pipeline.pair_files import ImagePair, PairFolderError
from fusion_node.pipeline.pair_files import read_pair as runtime_read_pair
from training.data.errors import DataError


def _read(path: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise DataError(f"cannot read image {path}: the file is missing or not an image OpenCV decodes")
    return image


def read_pair(ir_path: Path, vi_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ir uint8 H×W, visible uint8 H×W×3 BGR), as decoded (the in-memory cache keeps these).

    Decoded by the runtime's read_pair (IR as one channel, grayscale visible replicated to three:
    what the cameras publish); training also needs the pair registered to one size.
    """
    try:
        ir, vi = runtime_read_pair(ImagePair(ir_path.stem, ir_path, vi_path))
    except PairFolderError as err:
        raise DataError(str(err)) from err
    if ir.shape[:2] != vi.shape[:2]:
        raise DataError(
            f"IR {ir_path} is {ir.shape[1]}x{ir.shape[0]} but visible {vi_path} is "
            f"{vi.shape[1]}x{vi.shape[0]}: the pair must be registered to the same size"
        )
    return ir, vi


def read_mask(path: Path, size: tuple[int, int], num_classes: int | None) -> np.ndarray:
    """uint8 H×W class ids; checks the size against the pair and ids against the class count."""
    mask = _read(path, cv2.IMREAD_UNCHANGED)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise DataError(f"mask {path} must be a single-channel 8-bit image of class ids, got {mask.shape}")
    if mask.shape != size:
        raise DataError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, its pair {size[1]}x{size[0]}")
    if num_classes is not None:
        bad = mask[(mask >= num_classes) & (mask != 255)]
        if bad.size:
            raise DataError(
                f"mask {path} holds class id {int(bad.max())} but seg_class_names has {num_classes} "
                "entries: add the missing names or remap the masks"
            )
    return mask
