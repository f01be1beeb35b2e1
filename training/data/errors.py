"""The one exception class of the data subsystem."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset folder, annotation file or data configuration that cannot be loaded as asked."""
