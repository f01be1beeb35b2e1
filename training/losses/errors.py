"""The one exception class of the losses / bi-level subsystem."""

from __future__ import annotations


class LossError(ValueError):
    """A loss or bi-level configuration, or an input to them, that cannot be used as given."""
