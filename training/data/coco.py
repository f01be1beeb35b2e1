"""COCO detection JSON (the M3FD annotations shipped in shared/data/m3fd)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from training.data.errors import DataError

Objects = list[tuple[str, tuple[float, float, float, float]]]


def read_coco(path: Path) -> dict[str, Objects]:
    """file_name → [(category name, (x1, y1, x2, y2))] for every image listed, boxes or not."""
    try:
        data = json.loads(path.read_text())
        categories = {c["id"]: c["name"] for c in data["categories"]}
        files = {img["id"]: img["file_name"] for img in data["images"]}
        objects: dict[str, Objects] = defaultdict(list)
        for ann in data.get("annotations", []):
            x, y, w, h = (float(v) for v in ann["bbox"])  # COCO boxes are [x, y, width, height]
            objects[files[ann["image_id"]]].append((categories[ann["category_id"]], (x, y, x + w, y + h)))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"COCO annotation {path} cannot be read as detection JSON: {err!r}") from err
    return {name: objects.get(name, []) for name in files.values()}
