"""make_bag: real rosbag2 files (mcap and sqlite3) read back through FrameReader."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_node.pipeline.pair_files import PairFolderError, find_pairs
from fusion_node.replay import BagError, FrameReader, make_bag
from fusion_node.replay.bagio import DEFAULT_IR_TOPIC, DEFAULT_VISIBLE_TOPIC
from fusion_node.replay.make_bag import MAX_JITTER_NS, MONO16_GAIN, MONO16_OFFSET, START_NS


def read_all(bag: Path) -> dict[str, list]:
    with FrameReader(bag, ir_topic=DEFAULT_IR_TOPIC, visible_topic=DEFAULT_VISIBLE_TOPIC) as reader:
        frames: dict[str, list] = {"ir": [], "visible": []}
        for role, frame in reader.frames():
            frames[role].append(frame)
        assert reader.counts == {"ir": len(frames["ir"]), "visible": len(frames["visible"])}
    return frames


def test_raw_mcap_round_trip_is_lossless_with_rate_stamps(msrs_dir: Path, tmp_path: Path) -> None:
    count = make_bag(msrs_dir, tmp_path / "bag", rate_hz=20.0, loops=2, progress=False)
    frames = read_all(tmp_path / "bag")
    pairs = find_pairs(msrs_dir) * 2
    assert count == 2 * len(pairs) == 12
    assert [f.stamp_ns for f in frames["visible"]] == [START_NS + i * 50_000_000 for i in range(6)]
    assert {ir.stamp_ns - vi.stamp_ns for ir, vi in zip(frames["ir"], frames["visible"], strict=True)} != {0}
    for ir, vi, pair in zip(frames["ir"], frames["visible"], pairs, strict=True):
        assert abs(ir.stamp_ns - vi.stamp_ns) <= MAX_JITTER_NS
        assert (ir.frame_id, vi.frame_id) == ("ir_optical_frame", "visible_optical_frame")
        np.testing.assert_array_equal(ir.image, cv2.imread(str(pair.ir), cv2.IMREAD_GRAYSCALE))
        np.testing.assert_array_equal(vi.image, cv2.imread(str(pair.visible), cv2.IMREAD_COLOR))


def test_sqlite3_compressed_mono16_llvip_layout(llvip_dir: Path, tmp_path: Path) -> None:
    make_bag(
        llvip_dir, tmp_path / "bag", ir_encoding="mono16", compressed=True, storage="sqlite3", progress=False
    )
    assert (tmp_path / "bag" / "bag.db3").is_file()
    frames = read_all(tmp_path / "bag")
    pairs = find_pairs(llvip_dir)
    assert [p.ir.parent.name for p in pairs] == ["test", "train"]  # both splits, matched by name
    for ir, vi, pair in zip(frames["ir"], frames["visible"], pairs, strict=True):
        ir8 = cv2.imread(str(pair.ir), cv2.IMREAD_GRAYSCALE)
        assert ir.image.dtype == np.uint16
        np.testing.assert_array_equal(ir.image, ir8.astype(np.uint16) * MONO16_GAIN + MONO16_OFFSET)  # png
        source = cv2.imread(str(pair.visible), cv2.IMREAD_COLOR)
        assert vi.image.shape == source.shape == (1024, 1280, 3)
        assert np.abs(vi.image.astype(int) - source).mean() < 3  # jpeg


def test_bad_inputs_raise_bag_error(msrs_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PairFolderError, match="neither ir/ \\+ vi/"):
        make_bag(tmp_path, tmp_path / "bag", progress=False)
    with pytest.raises(BagError, match="mono8 or mono16"):
        make_bag(msrs_dir, tmp_path / "bag", ir_encoding="rgb8", progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="exists already"):
        make_bag(msrs_dir, tmp_path / "exists", progress=False)
