"""Offline replay: a recorded rosbag2 through the same pairing and pipeline as the node."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fusion_node.pipeline import ApproximateTimePairer, FusionPipeline, PipelineConfig, overlay
from fusion_node.replay.bagio import FrameReader, OutputBag, open_writer
from fusion_node.replay.report import ReportSample, write_report
from fusion_node.shutdown import raise_if_stopped

OUTPUT_BAG = "outputs"  # out_dir/outputs/outputs.mcap + metadata.yaml: `ros2 bag play out_dir/outputs`
REPORT_SAMPLES = 4
MAX_QUEUE = 30  # per-camera pairing queue; offline there is no compute backlog, only clock skew


@dataclass(frozen=True)
class ReplayStats:
    """What one replay did; latencies are the pipeline's per-pair "total" in ms."""

    frames_in: int
    pairs: int
    unpaired_ir: int
    unpaired_visible: int
    dropped: int
    time_jumps: int
    messages_written: int
    wall_time_s: float
    output_bag: Path
    report: Path
    latencies_ms: tuple[float, ...] = field(repr=False)


def _sample_indices(expected_pairs: int) -> set[int]:
    """Evenly spaced pair indices for the contact sheet."""
    count = min(REPORT_SAMPLES, expected_pairs)
    return {int(i) for i in np.linspace(0, expected_pairs - 1, count).round()} if count else set()


def replay(
    bag: Path,
    out_dir: Path,
    *,
    ir_topic: str,
    visible_topic: str,
    slop_s: float,
    pipeline_config: PipelineConfig,
    progress: bool = True,
) -> ReplayStats:
    """Pair, fuse and detect every IR/visible frame of `bag`; write outputs bag + report to `out_dir`.

    Raises:
        BagError: the bag cannot be read, lacks the topics, or the output bag exists.
        PipelineError: the model cannot be loaded or a frame cannot be decoded.
    """
    pipeline = FusionPipeline(pipeline_config)  # first: a bad model fails before any output exists
    info = pipeline.info
    pairer = ApproximateTimePairer(round(slop_s * 1e9), MAX_QUEUE)
    out_dir.mkdir(parents=True, exist_ok=True)
    latencies: list[float] = []
    samples: list[ReportSample] = []
    frames_in = time_jumps = 0
    start = time.perf_counter()
    with (
        FrameReader(bag, ir_topic=ir_topic, visible_topic=visible_topic) as reader,
        open_writer(out_dir / OUTPUT_BAG) as writer,
    ):
        seg_classes = len(info.seg_class_names) if info.segmentation_trained else None
        outputs = OutputBag(writer, detections=info.detection_trained, segmentation_classes=seg_classes)
        wanted = _sample_indices(min(reader.counts.values()))
        total = sum(reader.counts.values())
        for role, frame in tqdm(reader.frames(), total=total, desc="replay", disable=not progress):
            raise_if_stopped()  # SIGINT/SIGTERM: the output bag closes with what was written
            frames_in += 1
            pair = pairer.push(role, frame)
            if pairer.stats.time_jumps != time_jumps:  # the bag looped: AGC must not carry over
                time_jumps = pairer.stats.time_jumps
                pipeline.reset()
            if pair is None:
                continue
            result = pipeline.process(pair.ir.image, pair.visible.image)
            debug = overlay(result.fused, result.segmentation, result.detections, n_classes=seg_classes)
            outputs.write(result, pair.visible, debug)
            if len(latencies) in wanted:
                samples.append(ReportSample(pair.ir.image, pair.visible.image, result.fused, debug))
            latencies.append(result.timings_ms["total"])
    wall_time_s = time.perf_counter() - start
    stats = pairer.stats
    report = write_report(
        out_dir,
        title=f"Replay of {bag.name}",
        latencies_ms=latencies,
        wall_time_s=wall_time_s,
        frames_in=frames_in,
        frames_out=len(latencies),
        dropped=stats.dropped_queue,
        unpaired=stats.unpaired_ir + stats.unpaired_visible,
        samples=samples,
        extra={
            "bag": str(bag),
            "model": info.model_name,
            "backend": pipeline_config.backend,
            "ir_topic": ir_topic,
            "visible_topic": visible_topic,
            "slop_s": slop_s,
            "time_jumps": stats.time_jumps,
            "stale_pairs": stats.stale,  # pairs with a frame whose stamp went backwards: not fused
            "latency_source": "FusionPipeline.process total per pair",
            "messages_written": outputs.count,
            "output_bag": str(out_dir / OUTPUT_BAG),
        },
    )
    return ReplayStats(
        frames_in=frames_in,
        pairs=len(latencies),
        unpaired_ir=stats.unpaired_ir,
        unpaired_visible=stats.unpaired_visible,
        dropped=stats.dropped_queue,
        time_jumps=stats.time_jumps,
        messages_written=outputs.count,
        wall_time_s=wall_time_s,
        output_bag=out_dir / OUTPUT_BAG,
        report=report,
        latencies_ms=tuple(latencies),
    )
