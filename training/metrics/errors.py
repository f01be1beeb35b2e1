"""The metrics subsystem's one exception class."""

from __future__ import annotations


class MetricsError(Exception):
    """Bad input to a metric or to ``fusion-eval``; the message names the problem and the fix."""
