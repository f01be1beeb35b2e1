"""Box caches with provenance and the detector-box merge."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.config import ConfigError
from training.data.boxcache import GROUND_TRUTH, DetectorSettings, box_cache, detect_pair, weights_sha256
from training.data.errors import DataError
from training.data.sample import Pair
from training.data.split import SegDatasetSpec
from training.models.centernet import ROAD_CLASSES
from training.models.seg_classes import SEG_CLASSES
from training.paths import CENTERNET
from training.seg_config import load_seg_config

VEHICLE, PERSON = SEG_CLASSES.index("vehicle"), SEG_CLASSES.index("person")


def write_m3fd(root: Path) -> SegDatasetSpec:
    """Two pairs in M3FD's COCO form: People, Car and Lamp (no segmentation class) boxes."""
    for sub in ("ir", "vi", "annotations"):
        (root / sub).mkdir(parents=True)
    for name in ("00001", "00002"):
        cv2.imwrite(str(root / "ir" / f"{name}.png"), np.zeros((48, 64), np.uint8))
        cv2.imwrite(str(root / "vi" / f"{name}.png"), np.zeros((48, 64, 3), np.uint8))
    coco = {
        "categories": [{"id": 1, "name": "People"}, {"id": 2, "name": "Car"}, {"id": 6, "name": "Lamp"}],
        "images": [{"id": 1, "file_name": "00001.png"}, {"id": 2, "file_name": "00002.png"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [4, 5, 10, 20]},
            {"image_id": 1, "category_id": 2, "bbox": [20, 10, 30, 15]},
            {"image_id": 2, "category_id": 6, "bbox": [1, 1, 2, 2]},
        ],
    }
    (root / "annotations" / "m3fd-train.json").write_text(json.dumps(coco))
    return SegDatasetSpec(kind="m3fd", root=str(root), split="train", name="m3fd-tiny")


def test_ground_truth_cache_maps_classes_and_records_provenance(tmp_path: Path) -> None:
    spec = write_m3fd(tmp_path / "m3fd")
    cache_dir = tmp_path / "cache"
    boxes = box_cache(spec, DetectorSettings(), cache_dir=cache_dir)
    first = boxes["00001"]
    assert first.classes.tolist() == [PERSON, VEHICLE]  # People → person, Car → vehicle
    np.testing.assert_allclose(first.boxes, [[4, 5, 14, 25], [20, 10, 50, 25]])
    assert first.sources == (GROUND_TRUTH, GROUND_TRUTH) and len(boxes["00002"].classes) == 0  # Lamp
    stored = json.loads((cache_dir / "m3fd-tiny.json").read_text())
    assert stored["header"]["source"] == GROUND_TRUTH and "detector" not in stored["header"]
    assert stored["pairs"]["00001"][0] == {
        "box": [4.0, 5.0, 14.0, 25.0], "class": "person", "score": 1.0, "source": GROUND_TRUTH
    }  # fmt: skip

    # A matching header is read back, not rebuilt (the marker survives): detector settings do not
    # concern ground truth. --rebuild-boxes rebuilds.
    stored["pairs"]["00001"] = []
    (cache_dir / "m3fd-tiny.json").write_text(json.dumps(stored))
    assert len(box_cache(spec, DetectorSettings(threshold=0.9), cache_dir=cache_dir)["00001"].classes) == 0
    rebuilt = box_cache(spec, DetectorSettings(), cache_dir=cache_dir, rebuild=True)
    assert len(rebuilt["00001"].classes) == 2


def fake_detector(by_input: dict[float, np.ndarray]):  # type: ignore[no-untyped-def]
    """A detector callable that answers by the input's mean brightness (visible vs IR)."""

    def run(images: np.ndarray) -> np.ndarray:
        return by_input[round(float(images.mean()), 1)]

    return run


def test_detector_boxes_merge_inputs_by_class_nms_and_map_back_to_the_image() -> None:
    # A 256×128 pair letterboxed into 512²: scale 2, 128 px of padding above the image.
    pair = Pair(np.full((128, 256), 0.2, np.float32), np.full((128, 256, 3), 0.6, np.float32),
                np.zeros((0, 4), np.float32), np.zeros(0, np.int64), None, "p")  # fmt: skip
    car, person = ROAD_CLASSES.index("car"), ROAD_CLASSES.index("person")
    visible = np.array([[100, 228, 200, 328, 0.9, car], [300, 228, 340, 300, 0.2, person]], np.float32)
    ir = np.array([[104, 230, 204, 330, 0.6, car], [300, 228, 340, 300, 0.5, person]], np.float32)
    # Letterboxed input mean: 0.6·255 over the image rows (half of 512²), zero padding elsewhere.
    detector = fake_detector({round(0.6 * 255 / 2, 1): visible, round(0.2 * 255 / 2, 1): ir})
    found = detect_pair(detector, pair, DetectorSettings(threshold=0.3, inputs=["visible", "ir"]))
    order = np.argsort(found.classes)
    assert found.classes[order].tolist() == [PERSON, VEHICLE]  # the two cars merged, weak person dropped
    assert [found.sources[i] for i in order] == ["ir", "visible"]
    np.testing.assert_allclose(found.scores[order], [0.5, 0.9])
    np.testing.assert_allclose(found.boxes[order[1]], [50, 50, 100, 100])  # (x − 0, y − 128) / 2


@pytest.fixture(scope="module")
def roadscene_two(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    if not CENTERNET.is_file():
        pytest.skip(f"pretrained detector not found at {CENTERNET}")
    root = tmp_path_factory.mktemp("roadscene")
    for sub in ("ir", "vi"):
        (root / sub).mkdir()
        for name in ("FLIR_05697.jpg", "FLIR_07747.jpg"):
            shutil.copyfile(data_dir / "roadscene" / sub / name, root / sub / name)
    return root


def test_detector_cache_is_real_thresholded_and_rebuilt_when_settings_change(
    roadscene_two: Path, tmp_path: Path
) -> None:
    spec = SegDatasetSpec(kind="paired", root=str(roadscene_two), name="rs")
    settings = DetectorSettings(threshold=0.3)
    boxes = box_cache(spec, settings, cache_dir=tmp_path)
    header = json.loads((tmp_path / "rs.json").read_text())["header"]
    assert header["detector"]["weights_sha256"] == weights_sha256(CENTERNET)
    assert header["detector"]["threshold"] == 0.3 and header["detector"]["inputs"] == ["visible", "ir"]
    found = [b for b in boxes.values() if len(b.classes)]
    assert found, "the detector finds road objects on these RoadScene pairs"
    for b in boxes.values():
        assert (b.scores >= 0.3).all() and set(b.sources) <= {"visible", "ir"}
        assert ((b.classes >= 1) & (b.classes < len(SEG_CLASSES))).all()
    strict = box_cache(spec, replace(settings, threshold=0.6, inputs=["visible"]), cache_dir=tmp_path)
    assert json.loads((tmp_path / "rs.json").read_text())["header"]["detector"]["threshold"] == 0.6
    for name, b in strict.items():
        assert (b.scores >= 0.6).all() and set(b.sources) <= {"visible"}
        assert len(b.classes) <= len(boxes[name].classes)


def test_spec_and_config_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="role"):
        SegDatasetSpec(kind="paired", root="x", name="a", role="test")
    with pytest.raises(DataError, match="inputs"):
        DetectorSettings(inputs=["thermal"])
    config = tmp_path / "c.yaml"
    config.write_text("datasets: [{name: a, kind: paired, root: x}, {name: a, kind: paired, root: y}]\n")
    with pytest.raises(ConfigError, match="unique names"):
        load_seg_config(config)
