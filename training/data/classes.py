"""Mapping a dataset's class names onto the experiment's `class_names`."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)


class ClassMap:
    """Case-insensitive name → index into `class_names`, through an optional rename map.

    A dataset name is first renamed by `name_map` (e.g. M3FD "People" → "person"), then looked up
    in `class_names`. Names that match nothing are counted in `dropped` and their boxes skipped.
    """

    def __init__(self, class_names: Sequence[str], name_map: Mapping[str, str] | None = None) -> None:
        self._index = {name.lower(): i for i, name in enumerate(class_names)}
        self._rename = {src.lower(): dst.lower() for src, dst in (name_map or {}).items()}
        self.dropped: Counter[str] = Counter()

    def __call__(self, name: str) -> int | None:
        key = name.strip().lower()
        index = self._index.get(self._rename.get(key, key))
        if index is None:
            self.dropped[name] += 1
        return index

    def report(self, dataset: str) -> None:
        """Log the dropped classes once, after a dataset has parsed its annotations."""
        if self.dropped:
            log.info("%s: dropped boxes of classes not in class_names: %s", dataset, dict(self.dropped))
