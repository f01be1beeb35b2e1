"""Bags without ROS: make a rosbag2 from image pairs, replay one through the pipeline, report."""

from __future__ import annotations

from fusion_node.replay.bagio import BagError, FrameReader, OutputBag, make_typestore, open_writer
from fusion_node.replay.make_bag import make_bag
from fusion_node.replay.replay import ReplayStats, replay
from fusion_node.replay.report import ReportSample, write_report

__all__ = [
    "BagError",
    "FrameReader",
    "OutputBag",
    "ReplayStats",
    "ReportSample",
    "make_bag",
    "make_typestore",
    "open_writer",
    "replay",
    "write_report",
]
