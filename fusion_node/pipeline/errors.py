"""The pipeline's exceptions: one base class, one subclass per kind of problem."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the runtime pipeline raises; the message names the problem and the fix."""


class ImageError(PipelineError):
    """An image message or array the pipeline cannot decode or use."""


class ModelError(PipelineError):
    """A model file that is missing, unreadable or does not follow docs/model_contract.md."""


class RegistrationError(PipelineError):
    """The infrared image cannot be mapped into the visible image's geometry."""


class CalibrationError(RegistrationError):
    """A camera calibration (K, D, extrinsics) that cannot give an IR -> visible registration."""
