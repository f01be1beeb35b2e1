"""Write a rosbag2 of IR/visible camera topics from a folder of registered image pairs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from fusion_node.pipeline.pair_files import find_pairs
from fusion_node.replay.bagio import (
    COMPRESSED_IMAGE,
    DEFAULT_IR_TOPIC,
    DEFAULT_VISIBLE_TOPIC,
    IMAGE,
    BagError,
    compressed_msg,
    header,
    image_msg,
    make_typestore,
    open_writer,
)
from fusion_node.shutdown import raise_if_stopped

START_NS = 1_700_000_000 * 1_000_000_000  # fixed start: the same folder always gives the same bag
MAX_JITTER_NS = 3_000_000  # IR stamp offset, well inside any usable pairing slop
# mono16 mimics a radiometric camera's raw counts: a narrow band high in the 16-bit range, so the
# pipeline's thermal AGC has real work to do.
MONO16_OFFSET = 20_000
MONO16_GAIN = 8


def _read(path: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise BagError(f"cannot read image {path}; is it a valid image file?")
    return image


def _encode(image: np.ndarray, fmt: str, path: Path) -> bytes:
    ok, data = cv2.imencode(fmt, image)
    if not ok:
        raise BagError(f"cannot encode {path} as {fmt}")
    return data.tobytes()


def _stamps(count: int, rate_hz: float) -> Iterator[tuple[int, int]]:
    """(visible, IR) stamps: the visible camera at `rate_hz`, the IR one with a small jitter."""
    period_ns = round(1e9 / rate_hz)
    jitter = min(MAX_JITTER_NS, period_ns // 4)
    rng = np.random.default_rng(0)
    for i in range(count):
        visible_ns = START_NS + i * period_ns
        yield visible_ns, visible_ns + int(rng.integers(-jitter, jitter + 1))


def make_bag(
    pairs_dir: Path,
    out: Path,
    *,
    rate_hz: float = 10.0,
    ir_encoding: str = "mono8",
    compressed: bool = False,
    storage: str = "mcap",
    ir_topic: str = DEFAULT_IR_TOPIC,
    visible_topic: str = DEFAULT_VISIBLE_TOPIC,
    frame_ids: tuple[str, str] = ("ir_optical_frame", "visible_optical_frame"),
    loops: int = 1,
    progress: bool = True,
) -> int:
    """Write the pairs of `pairs_dir` as a rosbag2 at `out`; return the number of messages written.

    Args:
        pairs_dir: Dataset folder ({ir,vi}/NAME.ext or {infrared,visible}/SPLIT/NAME.ext).
        out: Bag folder to create (must not exist).
        rate_hz: Frame rate of the stamps.
        ir_encoding: "mono8" or "mono16" (see MONO16_OFFSET) for the IR topic.
        compressed: Write sensor_msgs/CompressedImage (IR png, visible jpeg) instead of Image.
        storage: "mcap" or "sqlite3".
        ir_topic: IR topic name.
        visible_topic: Visible topic name.
        frame_ids: (IR, visible) header frame ids.
        loops: How many times to play the folder (stamps keep increasing).
        progress: Show a progress bar.

    Raises:
        BagError: bad options, or the bag cannot be written. PairFolderError: no pairs in `pairs_dir`.
    """
    if ir_encoding not in ("mono8", "mono16"):
        raise BagError(f"unknown IR encoding {ir_encoding!r}; use mono8 or mono16")
    if rate_hz <= 0 or loops < 1:
        raise BagError(f"rate must be > 0 and loops >= 1 (got rate {rate_hz}, loops {loops})")
    pairs = find_pairs(pairs_dir) * loops
    ts = make_typestore()

    def ir_msg(path: Path, hdr: Any) -> Any:
        ir = _read(path, cv2.IMREAD_GRAYSCALE)
        if ir_encoding == "mono16":
            ir = ir.astype(np.uint16) * MONO16_GAIN + MONO16_OFFSET
        if compressed:
            return compressed_msg(ts, _encode(ir, ".png", path), f"{ir_encoding}; png compressed", hdr)
        return image_msg(ts, ir, ir_encoding, hdr)

    def visible_msg(path: Path, hdr: Any) -> Any:
        if compressed:
            data = _encode(_read(path, cv2.IMREAD_COLOR), ".jpg", path)
            return compressed_msg(ts, data, "bgr8; jpeg compressed bgr8", hdr)
        return image_msg(ts, _read(path, cv2.IMREAD_COLOR), "bgr8", hdr)

    msgtype = COMPRESSED_IMAGE if compressed else IMAGE
    count = 0
    with open_writer(out, storage=storage) as writer:
        ir_conn = writer.add_connection(ir_topic, msgtype, typestore=ts)
        vi_conn = writer.add_connection(visible_topic, msgtype, typestore=ts)
        bar = tqdm(total=len(pairs), desc="make-bag", unit="pair", disable=not progress)
        for pair, (vi_ns, ir_ns) in zip(pairs, _stamps(len(pairs), rate_hz), strict=True):
            raise_if_stopped()  # SIGINT/SIGTERM: the writer closes the bag with what was written
            msgs = [
                (ir_ns, ir_conn, ir_msg(pair.ir, header(ts, ir_ns, frame_ids[0]))),
                (vi_ns, vi_conn, visible_msg(pair.visible, header(ts, vi_ns, frame_ids[1]))),
            ]
            for stamp_ns, conn, msg in sorted(msgs, key=lambda m: m[0]):  # bag time must not go back
                writer.write(conn, stamp_ns, ts.serialize_cdr(msg, msgtype))
                count += 1
            bar.update()
        bar.close()
    return count
