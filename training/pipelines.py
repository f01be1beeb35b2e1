"""The evaluations' use of the product's runtime: one FusionPipeline per input size, so that every
pair runs at its own size (rounded to the model's size divisor), not at the model's default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusion_node.pipeline import FusionPipeline, PipelineConfig, PipelineError
from training.metrics.errors import MetricsError


def pipelines_by_size(model: Path, **options: Any) -> Callable[[int, int], FusionPipeline]:
    """``pipeline_for(height, width)``: ``model`` (with PipelineConfig ``options``) at that size
    rounded to its size divisor; pipelines are made once per size. MetricsError if unloadable."""
    try:
        default = FusionPipeline(PipelineConfig(model_path=model, **options))
    except PipelineError as err:
        raise MetricsError(f"cannot load {model}: {err}") from err
    divisor = default.info.size_divisor
    pipelines = {tuple(default.input_size): default}

    def pipeline_for(height: int, width: int) -> FusionPipeline:
        size = (max(1, round(height / divisor)) * divisor, max(1, round(width / divisor)) * divisor)
        if size not in pipelines:
            pipelines[size] = FusionPipeline(PipelineConfig(model_path=model, input_size=size, **options))
        return pipelines[size]

    return pipeline_for
