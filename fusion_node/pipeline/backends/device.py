"""The `device` option of every backend: "cpu", "auto", "cuda" or "cuda:N", parsed in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from fusion_node.pipeline.errors import ModelError

DEVICE_FORMS = ("cpu", "auto", "cuda", "cuda:N")
_PATTERN = re.compile(r"(cpu|auto|cuda)(?::(\d+))?")


@dataclass(frozen=True)
class Device:
    """A parsed device: `kind`, and for CUDA the GPU index (CUDA's device ordinal, as nvidia-smi lists)."""

    kind: Literal["cpu", "auto", "cuda"]
    index: int = 0


def parse_device(text: str) -> Device:
    """Parse `text`: "cuda:1" -> Device("cuda", 1); "cuda" and "auto" mean GPU 0.

    Raises:
        ModelError: any other text (an index is accepted after "cuda" only).
    """
    match = _PATTERN.fullmatch(text)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise ModelError(
            f"unknown device {text!r}; use one of {', '.join(DEVICE_FORMS)} (N: the GPU index, e.g. cuda:1)"
        )
    return Device(cast(Literal["cpu", "auto", "cuda"], match[1]), int(match[2] or 0))
