"""Registered IR/visible image pairs in folders: the one rule make-bag, the demo, the benchmark,
training data, evaluation and export's parity check share (live streams pair by time: pairing.py).

A pair is two image files with the same name (path below their folders, without suffix) in the IR
and the visible folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fusion_node.pipeline.errors import PipelineError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# (IR, visible) folders of the supported dataset layouts: {ir,vi}/NAME (TNO, RoadScene, MSRS) and
# {infrared,visible}/SPLIT/NAME (LLVIP).
LAYOUTS = (("ir", "vi"), ("infrared", "visible"))

log = logging.getLogger(__name__)


class PairFolderError(PipelineError):
    """A folder without usable IR/visible pairs; the message names the folder or file and the fix."""


@dataclass(frozen=True)
class ImagePair:
    """One registered pair on disk; `name` is its path below the folders without suffix
    ("00016N", or "test/190001" in LLVIP's split folders)."""

    name: str
    ir: Path
    visible: Path


def list_images(folder: Path, *, recursive: bool = False) -> dict[str, Path]:
    """Image files of `folder` by name (suffix any of IMAGE_SUFFIXES, case-insensitive).

    Raises:
        PairFolderError: the folder does not exist, or two files share a name (a.png and a.jpg).
    """
    if not folder.is_dir():
        raise PairFolderError(f"image folder {folder} does not exist: check the dataset root and layout")
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            name = path.relative_to(folder).with_suffix("").as_posix()
            if name in found:
                raise PairFolderError(f"{folder} holds two images named {name!r}: keep one of them")
            found[name] = path
    return found


def match_pairs(
    ir_dir: Path, visible_dir: Path, *, recursive: bool = False, strict: bool = False
) -> list[ImagePair]:
    """The images of the same name in both folders, sorted by name.

    An image without a partner is an error when `strict` (an evaluation must cover every pair),
    else skipped with a warning.

    Raises:
        PairFolderError: a folder is missing, no name is in both, or (strict) an image is unpaired.
    """
    irs, visibles = list_images(ir_dir, recursive=recursive), list_images(visible_dir, recursive=recursive)
    unmatched = sorted(irs.keys() ^ visibles.keys())
    if unmatched and strict:
        raise PairFolderError(
            f"{len(unmatched)} images of {ir_dir} and {visible_dir} have no partner, e.g. {unmatched[:3]}: "
            "every image needs its pair of the same name"
        )
    if unmatched:
        log.warning(
            "%s / %s: %d images without a partner skipped, e.g. %s",
            ir_dir,
            visible_dir,
            len(unmatched),
            unmatched[:3],
        )
    pairs = [ImagePair(name, irs[name], visibles[name]) for name in sorted(irs.keys() & visibles.keys())]
    if not pairs:
        raise PairFolderError(
            f"no IR/visible images with matching names in {ir_dir} and {visible_dir}; "
            f"expected {', '.join(IMAGE_SUFFIXES)} files named alike in both"
        )
    return pairs


def find_pairs(folder: Path, *, strict: bool = False) -> list[ImagePair]:
    """The pairs of a dataset folder in one of LAYOUTS (the first present), sub-folders included.

    Raises:
        PairFolderError: no layout's folders exist, or as `match_pairs`.
    """
    for ir_name, visible_name in LAYOUTS:
        if (folder / ir_name).is_dir() and (folder / visible_name).is_dir():
            return match_pairs(folder / ir_name, folder / visible_name, recursive=True, strict=strict)
    raise PairFolderError(
        f"{folder} has neither ir/ + vi/ nor infrared/ + visible/ folders; "
        "give a dataset folder such as ../shared/data/msrs_samples"
    )


def read_pair(pair: ImagePair) -> tuple[np.ndarray, np.ndarray]:
    """(IR uint8 H×W, visible uint8 H×W×3 BGR): the pair as the cameras publish it (mono8, bgr8).

    Raises:
        PairFolderError: a file OpenCV cannot decode.
    """
    ir = cv2.imread(str(pair.ir), cv2.IMREAD_GRAYSCALE)
    visible = cv2.imread(str(pair.visible), cv2.IMREAD_COLOR)
    if ir is None or visible is None:
        raise PairFolderError(f"cannot read the pair {pair.ir} / {pair.visible}: are they valid image files?")
    return ir, visible
