"""replay: real bags through the real pipeline (contract model, ONNX Runtime) into a real mcap bag."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from fusion_node.pipeline import ImageError, ModelError, PipelineConfig, image_to_numpy
from fusion_node.pipeline.visualize import TILE_LABEL_HEIGHT as LABEL_HEIGHT
from fusion_node.replay import BagError, FrameReader, make_bag, make_typestore, open_writer, replay
from fusion_node.replay.bagio import (
    DEBUG_IMAGE_TOPIC,
    DEFAULT_IR_TOPIC,
    DEFAULT_VISIBLE_TOPIC,
    DETECTIONS_TOPIC,
    FUSED_TOPIC,
    IMAGE,
    SEGMENTATION_COLOR_TOPIC,
    SEGMENTATION_TOPIC,
    header,
    image_msg,
)
from fusion_node.replay.report import TILE_WIDTH

ALL_TOPICS = {FUSED_TOPIC, DETECTIONS_TOPIC, SEGMENTATION_TOPIC, SEGMENTATION_COLOR_TOPIC, DEBUG_IMAGE_TOPIC}
BOX_REL = (0.1, 0.2, 0.4, 0.6)  # make_contract_model's default box: class 1 ("car"), score 0.9


def run(bag: Path, out: Path, model: Path, **topics: str) -> Any:
    return replay(
        bag,
        out,
        ir_topic=topics.get("ir_topic", DEFAULT_IR_TOPIC),
        visible_topic=topics.get("visible_topic", DEFAULT_VISIBLE_TOPIC),
        slop_s=0.05,
        pipeline_config=PipelineConfig(model_path=model, backend="onnxruntime", threads=1),
        progress=False,
    )


def input_frames(bag: Path) -> tuple[list[Any], list[Any]]:
    with FrameReader(bag, ir_topic=DEFAULT_IR_TOPIC, visible_topic=DEFAULT_VISIBLE_TOPIC) as reader:
        frames = list(reader.frames())
    return [f for role, f in frames if role == "ir"], [f for role, f in frames if role == "visible"]


def output_messages(out: Path) -> dict[str, list[tuple[int, Any]]]:
    """Every message of outputs.mcap, deserialized, by topic: (log time, message)."""
    msgs: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    with AnyReader([out / "outputs" / "outputs.mcap"], default_typestore=make_typestore()) as reader:
        for connection, log_ns, rawdata in reader.messages():
            msgs[connection.topic].append((log_ns, reader.deserialize(rawdata, connection.msgtype)))
    return msgs


def check_outputs(out: Path, bag: Path, topics: set[str]) -> dict[str, list[tuple[int, Any]]]:
    """Headers = the input visible headers; image sizes = the visible sizes; boxes in visible pixels."""
    _, visible = input_frames(bag)
    msgs = output_messages(out)
    assert set(msgs) == topics
    for topic, items in msgs.items():
        assert [log for log, _ in items] == [f.stamp_ns for f in visible], topic
        for (_, msg), frame in zip(items, visible, strict=True):
            assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == frame.stamp_ns
            assert msg.header.frame_id == frame.frame_id == "visible_optical_frame"
            if topic != DETECTIONS_TOPIC:
                assert (msg.height, msg.width) == frame.image.shape[:2], topic
                continue
            height, width = frame.image.shape[:2]
            (det,) = msg.detections
            (hyp,) = det.results
            assert (hyp.hypothesis.class_id, hyp.hypothesis.score) == ("1", pytest.approx(0.9))  # "car"
            x1, y1, x2, y2 = np.multiply(BOX_REL, [width, height, width, height])
            assert det.bbox.center.position.x == pytest.approx((x1 + x2) / 2, abs=1e-3)
            assert det.bbox.center.position.y == pytest.approx((y1 + y2) / 2, abs=1e-3)
            assert (det.bbox.size_x, det.bbox.size_y) == (
                pytest.approx(x2 - x1, abs=1e-3),
                pytest.approx(y2 - y1, abs=1e-3),
            )
            assert det.header.stamp == msg.header.stamp
    return msgs


@pytest.fixture(scope="module")
def model(contract_model: Callable[..., Path]) -> Path:
    """The contract model at the MSRS size: no resize, so fused/segmentation are exact."""
    return contract_model(input_size=(480, 640))


@pytest.fixture(scope="module")
def msrs_bag(msrs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bag = tmp_path_factory.mktemp("bags") / "msrs"
    make_bag(msrs_dir, bag, progress=False)
    return bag


def test_replay_mcap_outputs_headers_pixels_boxes_and_report(
    msrs_bag: Path, model: Path, tmp_path: Path
) -> None:
    stats = run(msrs_bag, tmp_path, model)
    assert (stats.frames_in, stats.pairs, stats.unpaired_ir, stats.dropped) == (6, 3, 0, 0)
    assert stats.messages_written == 15
    msgs = check_outputs(tmp_path, msrs_bag, ALL_TOPICS)
    ir_frames, _ = input_frames(msrs_bag)
    vis_frames = input_frames(msrs_bag)[1]
    for i, (ir, vis) in enumerate(zip(ir_frames, vis_frames, strict=True)):
        fused = image_to_numpy(msgs[FUSED_TOPIC][i][1])
        np.testing.assert_array_equal(fused, np.maximum(vis.image, ir.image[..., None]))  # the model's rule
        segmentation = image_to_numpy(msgs[SEGMENTATION_TOPIC][i][1])
        np.testing.assert_array_equal(segmentation, (ir.image > 127).astype(np.uint8))
        assert msgs[SEGMENTATION_COLOR_TOPIC][i][1].encoding == "bgr8"

    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["frames_in"], report["frames_out"], report["messages_written"]) == (6, 3, 15)
    assert (tmp_path / "report.md").read_text().startswith("# Replay of msrs")
    sheet = cv2.imread(str(tmp_path / "contact_sheet.png"))
    assert sheet.shape == (3 * (LABEL_HEIGHT + TILE_WIDTH * 3 // 4), 4 * TILE_WIDTH, 3)


def test_replay_sqlite3_compressed_mono16_sizes_vary(tno_dir: Path, model: Path, tmp_path: Path) -> None:
    bag = tmp_path / "tno"
    make_bag(tno_dir, bag, storage="sqlite3", compressed=True, ir_encoding="mono16", progress=False)
    stats = run(bag, tmp_path / "out", model)
    assert stats.pairs == 3
    check_outputs(tmp_path / "out", bag, ALL_TOPICS)


def test_untrained_heads_are_not_written(
    msrs_bag: Path, contract_model: Callable[..., Path], tmp_path: Path
) -> None:
    untrained = contract_model(input_size=(480, 640), detection_trained=False, segmentation_trained=False)
    run(msrs_bag, tmp_path, untrained)
    check_outputs(tmp_path, msrs_bag, {FUSED_TOPIC, DEBUG_IMAGE_TOPIC})


def test_missing_topic_lists_the_bags_topics(msrs_bag: Path, model: Path, tmp_path: Path) -> None:
    with pytest.raises(BagError, match="no ir topic '/thermal'") as err:
        run(msrs_bag, tmp_path, model, ir_topic="/thermal")
    assert f"{DEFAULT_IR_TOPIC} ({IMAGE}), {DEFAULT_VISIBLE_TOPIC} ({IMAGE})" in str(err.value)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_names_the_file_and_reindex(
    msrs_dir: Path, model: Path, tmp_path: Path, storage: str
) -> None:
    bag = tmp_path / "cut"
    make_bag(msrs_dir, bag, storage=storage, progress=False)
    (storage_file,) = (p for p in bag.iterdir() if p.name != "metadata.yaml")
    with storage_file.open("r+b") as f:
        f.truncate(storage_file.stat().st_size // 2)
    with pytest.raises(BagError, match=f"{storage_file.name}.*ros2 bag reindex"):
        run(bag, tmp_path / "out", model)


def test_missing_bag_and_missing_model(msrs_bag: Path, model: Path, tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        run(tmp_path / "nowhere", tmp_path / "out", model)
    with pytest.raises(ModelError, match=r"missing\.onnx"):
        run(msrs_bag, tmp_path / "out2", tmp_path / "missing.onnx")
    assert not (tmp_path / "out2" / "outputs").exists()  # the model is loaded before any output


def test_outputs_written_before_an_error_stay_readable(msrs_bag: Path, model: Path, tmp_path: Path) -> None:
    ir, visible = input_frames(msrs_bag)
    bag = tmp_path / "bad"
    typestore = make_typestore()
    with open_writer(bag) as writer:
        conns = {
            t: writer.add_connection(t, IMAGE, typestore=typestore)
            for t in (DEFAULT_IR_TOPIC, DEFAULT_VISIBLE_TOPIC)
        }
        for topic, frame, encoding in (
            (DEFAULT_IR_TOPIC, ir[0], "mono8"),
            (DEFAULT_VISIBLE_TOPIC, visible[0], "bgr8"),
            (DEFAULT_IR_TOPIC, ir[1], "mono8"),
        ):
            msg = image_msg(
                typestore, frame.image, encoding, header(typestore, frame.stamp_ns, frame.frame_id)
            )
            writer.write(conns[topic], frame.stamp_ns, typestore.serialize_cdr(msg, IMAGE))
        broken = image_msg(typestore, visible[1].image, "bgr8", header(typestore, visible[1].stamp_ns, "v"))
        broken.encoding = "yuv422_yuy2"
        writer.write(
            conns[DEFAULT_VISIBLE_TOPIC], visible[1].stamp_ns, typestore.serialize_cdr(broken, IMAGE)
        )
    with pytest.raises(ImageError, match="yuv422_yuy2"):
        run(bag, tmp_path / "out", model)
    msgs = output_messages(tmp_path / "out")
    assert set(msgs) == ALL_TOPICS
    assert all([log for log, _ in items] == [visible[0].stamp_ns] for items in msgs.values())
