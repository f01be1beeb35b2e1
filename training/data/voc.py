"""Pascal VOC XML annotations (M3FD official layout, LLVIP)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from training.data.errors import DataError


def read_voc(path: Path) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(class name, (xmin, ymin, xmax, ymax)) per `<object>`, coordinates as written in the file."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DataError(f"VOC annotation {path} is not valid XML: {err}") from err
    objects = []
    for obj in root.iter("object"):
        name, box = obj.findtext("name"), obj.find("bndbox")
        if name is None or box is None:
            raise DataError(f"VOC annotation {path} has an <object> without <name> or <bndbox>")
        try:
            coords = tuple(float(box.findtext(k, "")) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as err:
            raise DataError(
                f"VOC annotation {path}: object {name!r} has a missing/non-numeric bndbox"
            ) from err
        objects.append((name, (coords[0], coords[1], coords[2], coords[3])))
    return objects
