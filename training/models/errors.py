"""The one exception class of the networks subsystem."""

from __future__ import annotations


class ModelConfigError(ValueError):
    """A network configuration (or checkpoint config section) that cannot build a network."""
