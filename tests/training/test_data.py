"""Data loaders, joint transforms, collate and build_datasets on tiny on-disk datasets and the shared data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from training.data import (
    DataConfig,
    DataError,
    EvalTransform,
    LLVIPDataset,
    M3FDDataset,
    MSRSDataset,
    Pair,
    PairedFolderDataset,
    Photometric,
    TrainTransform,
    build_datasets,
    collate,
    crop,
    hflip,
    resize,
    to_sample,
)
from training.paths import SHARED_DATA as DATA

NO_JITTER = Photometric(brightness=0, contrast=0, saturation=0, gamma=0)


def write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def noise(h: int, w: int, c: int = 0, seed: int = 0) -> np.ndarray:
    shape = (h, w, c) if c else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def voc_xml(objects: list[tuple[str, tuple[int, int, int, int]]]) -> str:
    body = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b in objects
    )
    return f"<annotation><size><width>80</width><height>40</height></size>{body}</annotation>"


def position_pair(h: int = 100, w: int = 120) -> Pair:
    """IR encodes the column (x / 255), visible the row in B and column in G/R, mask the column."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    visible = np.stack([ys / 255, xs / 255, xs / 255], axis=2)
    boxes = np.array([[30, 20, 60, 40]], np.float32)
    return Pair(xs / 255, visible, boxes, np.array([1]), xs.astype(np.uint8), "pos")


# --- loaders ---------------------------------------------------------------------------------------


def test_paired_folder_reads_gray_ir_bgr_visible_and_pairs_by_stem(tmp_path: Path) -> None:
    ir = noise(24, 32)
    write(tmp_path / "ir" / "a.png", cv2.merge([ir, ir, ir]))  # 3-channel IR with equal channels
    write(tmp_path / "vi" / "a.bmp", noise(24, 32, 3, seed=1))
    write(tmp_path / "ir" / "b.png", noise(24, 32))
    write(tmp_path / "vi" / "b.png", noise(24, 32, seed=2))  # grayscale visible
    write(tmp_path / "ir" / "lonely.png", noise(24, 32))
    ds = PairedFolderDataset(tmp_path)
    assert ds.names == ["a", "b"]
    a, b = ds[0], ds[1]
    assert a["ir"].shape == (1, 24, 32) and a["visible"].shape == (3, 24, 32)
    assert a["ir"].dtype == torch.float32 and a["boxes"].shape == (0, 4) and a["labels"].dtype == torch.int64
    assert a["mask"] is None and a["name"] == "a"
    assert torch.equal(a["ir"][0], torch.from_numpy(ir.astype(np.float32) / 255))
    assert torch.equal(a["visible"][2], torch.from_numpy(noise(24, 32, 3, seed=1)[:, :, 2] / np.float32(255)))
    assert torch.equal(b["visible"][0], b["visible"][1]) and torch.equal(b["visible"][1], b["visible"][2])


def test_paired_size_mismatch_names_the_pair(tmp_path: Path) -> None:
    write(tmp_path / "ir" / "x.png", noise(24, 32))
    write(tmp_path / "vi" / "x.png", noise(20, 32, 3))
    with pytest.raises(DataError, match=r"x\.png.*32x24.*32x20"):
        PairedFolderDataset(tmp_path)[0]


def make_msrs(root: Path) -> Path:
    base = root / "msrs" / "train"
    write(base / "ir" / "00001N.png", noise(40, 80))
    write(base / "vi" / "00001N.png", noise(40, 80, 3))
    mask = np.zeros((40, 80), np.uint8)
    mask[10:20, 5:15] = 2
    mask[0, 0] = 255
    write(base / "Segmentation_labels" / "00001N.png", mask)
    labels = root / "det" / "train"
    labels.mkdir(parents=True)
    # Quirk: two boxes (person, bicycle) run together on one line, then a car.
    (labels / "00001N.txt").write_text("0 0.5 0.5 0.2 0.4 1 0.1 0.1 0.1 0.1\n2 0.25 0.25 0.1 0.1  \n")
    return labels


def test_msrs_masks_and_multibox_yolo_line(tmp_path: Path) -> None:
    labels = make_msrs(tmp_path)
    ds = MSRSDataset(
        tmp_path / "msrs", "train", class_names=["person", "car"], labels_dir=labels, num_seg_classes=9
    )
    s = ds[0]
    # 80×40 image: person cx=40 w=16, cy=20 h=16; car cx=20 w=8, cy=10 h=4; bicycle dropped.
    assert torch.equal(s["boxes"], torch.tensor([[32.0, 12.0, 48.0, 28.0], [16.0, 8.0, 24.0, 12.0]]))
    assert s["labels"].tolist() == [0, 1] and s["labels"].dtype == torch.int64
    assert s["mask"].dtype == torch.int64 and s["mask"].shape == (40, 80)
    assert s["mask"][15, 10] == 2 and s["mask"][0, 0] == 255 and s["mask"][30, 70] == 0
    with pytest.raises(DataError, match="seg_class_names has 2"):
        MSRSDataset(tmp_path / "msrs", "train", num_seg_classes=2)[0]


def test_msrs_bad_yolo_file_is_an_error(tmp_path: Path) -> None:
    labels = make_msrs(tmp_path)
    (labels / "00001N.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(DataError, match="multiple of 5"):
        MSRSDataset(tmp_path / "msrs", "train", class_names=["person"], labels_dir=labels)


def test_m3fd_official_voc_layout_maps_and_drops_classes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("00001", "00002"):
        write(tmp_path / "Ir" / f"{name}.png", noise(40, 80))
        write(tmp_path / "Vis" / f"{name}.png", noise(40, 80, 3))
    (tmp_path / "Annotation").mkdir()
    objects = [("People", (1, 2, 11, 22)), ("Lamp", (5, 5, 9, 9)), ("Car", (20, 10, 60, 30))]
    (tmp_path / "Annotation" / "00001.xml").write_text(voc_xml(objects))
    with caplog.at_level(logging.INFO, logger="training.data"):
        ds = M3FDDataset(tmp_path, class_names=["person", "car"], name_map={"PEOPLE": "Person"})
    assert "{'Lamp': 1}" in caplog.text
    s = ds[0]
    assert s["labels"].tolist() == [0, 1]
    assert torch.equal(s["boxes"], torch.tensor([[1.0, 2, 11, 22], [20, 10, 60, 30]]))
    assert ds[1]["boxes"].shape == (0, 4)  # no XML: unlabelled


def test_m3fd_coco_form_uses_images_on_disk(tmp_path: Path) -> None:
    write(tmp_path / "ir" / "00007.png", noise(40, 80))
    write(tmp_path / "vi" / "00007.png", noise(40, 80, 3))
    coco = {
        "images": [{"id": "00007", "file_name": "00007.png"}, {"id": "00009", "file_name": "00009.png"}],
        "categories": [{"id": 1, "name": "People"}, {"id": 2, "name": "Car"}, {"id": 6, "name": "Lamp"}],
        "annotations": [
            {"image_id": "00007", "category_id": 2, "bbox": [10, 5, 20, 15]},
            {"image_id": "00007", "category_id": 6, "bbox": [0, 0, 4, 4]},
            {"image_id": "00009", "category_id": 1, "bbox": [1, 1, 2, 2]},
        ],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "m3fd-val.json").write_text(json.dumps(coco))
    ds = M3FDDataset(tmp_path, "val", class_names=["people", "car"])
    assert ds.names == ["00007"]
    s = ds[0]
    assert torch.equal(s["boxes"], torch.tensor([[10.0, 5, 30, 20]])) and s["labels"].tolist() == [1]


def test_llvip_labelled_and_unlabelled_pairs(tmp_path: Path) -> None:
    for name in ("010001", "010002"):
        write(tmp_path / "infrared" / "train" / f"{name}.jpg", noise(40, 80))
        write(tmp_path / "visible" / "train" / f"{name}.jpg", noise(40, 80, 3))
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "010001.xml").write_text(voc_xml([("person", (3, 4, 13, 34))]))
    ds = LLVIPDataset(tmp_path, "train", class_names=["car", "person"])
    assert ds[0]["labels"].tolist() == [1] and torch.equal(ds[0]["boxes"], torch.tensor([[3.0, 4, 13, 34]]))
    assert ds[1]["boxes"].shape == (0, 4) and ds[1]["labels"].shape == (0,)
    with pytest.raises(DataError, match="needs a split"):
        LLVIPDataset(tmp_path, None)


# --- transforms ------------------------------------------------------------------------------------


def test_hflip_mirrors_boxes_and_pixels_exactly() -> None:
    pair = position_pair()
    out = hflip(pair)
    assert out.boxes.tolist() == [[60.0, 20.0, 90.0, 40.0]]  # W=120: x1' = 120-60, x2' = 120-30
    assert out.ir[0, 0] == pytest.approx(119 / 255) and out.mask is not None and out.mask[0, 0] == 119
    assert np.array_equal(out.visible[:, :, 1], out.ir)


def test_crop_shifts_clips_and_drops_boxes_exactly() -> None:
    pair = position_pair()
    boxes = [[40, 30, 60, 50], [70, 60, 90, 80], [0, 0, 10, 10], [75, 25, 85, 45]]
    pair = pair.with_(boxes=np.array(boxes, np.float32), labels=np.array([0, 1, 2, 3]))
    out = crop(pair, 20, 30, (50, 50), min_visible=0.3)
    # Box 1 keeps 1/4 of its area, box 2 lies outside; box 3 is clipped at x=50 and keeps half.
    assert out.boxes.tolist() == [[10, 10, 30, 30], [45, 5, 50, 25]]
    assert out.labels.tolist() == [0, 3]
    assert out.ir[0, 0] == pytest.approx(30 / 255) and out.visible[0, 0, 0] == pytest.approx(20 / 255)
    assert out.mask is not None and out.mask[0, 0] == 30 and out.ir.shape == (50, 50)


def test_crop_pads_images_with_zero_and_mask_with_ignore() -> None:
    out = crop(position_pair(20, 20), 0, 0, (30, 40))
    assert out.ir.shape == (30, 40) and out.visible.shape == (30, 40, 3)
    assert out.mask is not None and out.mask.shape == (30, 40)
    assert (out.mask[20:] == 255).all() and (out.mask[:, 20:] == 255).all() and out.mask[19, 19] == 19
    assert (out.ir[20:] == 0).all() and out.ir[19, 19] == pytest.approx(19 / 255)


def test_resize_scales_boxes_and_keeps_mask_ids() -> None:
    pair = position_pair(40, 80)
    out = resize(pair, (80, 40))
    assert out.boxes.tolist() == [[15.0, 40.0, 30.0, 80.0]]
    assert out.mask is not None and set(np.unique(out.mask)) <= set(np.unique(pair.mask))
    assert EvalTransform((80, 40))(pair, np.random.default_rng(0)).ir.shape == (80, 40)


def test_train_transform_moves_everything_together_and_is_reproducible() -> None:
    pair = position_pair()
    marker = np.zeros_like(pair.ir)
    marker[20:40, 30:60] = 1.0  # the box's content
    transform = TrainTransform((64, 64), scale_range=(1.0, 1.0), flip_prob=0.5, photometric=NO_JITTER)
    kept = 0
    for seed in range(12):
        out = transform(pair, np.random.default_rng(seed))
        again = transform(pair, np.random.default_rng(seed))
        assert np.array_equal(out.ir, again.ir) and np.array_equal(out.boxes, again.boxes)
        assert out.mask is not None
        assert np.array_equal(out.mask, np.rint(out.ir * 255).astype(np.uint8))  # mask follows IR
        assert np.array_equal(out.visible[:, :, 1], out.ir)  # visible follows IR
        moved = transform(pair.with_(ir=marker), np.random.default_rng(seed))
        for x1, y1, x2, y2 in moved.boxes.astype(int):
            kept += 1
            assert (moved.ir[y1:y2, x1:x2] == 1).all()
            assert moved.ir.sum() == (x2 - x1) * (y2 - y1)  # no marker pixel outside the box
    assert kept > 0


def test_photometric_jitter_changes_visible_only() -> None:
    pair = position_pair()
    strong = Photometric(
        brightness=0.5, contrast=0.5, saturation=0.5, gamma=0.5, blur_prob=1.0, noise_std=0.05
    )
    transform = TrainTransform((100, 120), scale_range=(1.0, 1.0), flip_prob=0.0, photometric=strong)
    out = transform(pair, np.random.default_rng(3))
    assert np.array_equal(out.ir, pair.ir)
    assert not np.allclose(out.visible, pair.visible, atol=1e-3)
    assert out.visible.min() >= 0 and out.visible.max() <= 1 and out.visible.dtype == np.float32


# --- collate and build_datasets --------------------------------------------------------------------


def sample_with(n_boxes: int, with_mask: bool) -> dict:
    pair = position_pair(16, 16)
    boxes = np.tile(np.array([[1, 2, 5, 6]], np.float32), (n_boxes, 1))
    return to_sample(
        pair.with_(boxes=boxes, labels=np.arange(n_boxes), mask=pair.mask if with_mask else None)
    )


def test_collate_varying_box_counts_and_masks() -> None:
    batch = collate([sample_with(0, True), sample_with(1, True), sample_with(3, True)])
    assert batch["ir"].shape == (3, 1, 16, 16) and batch["visible"].shape == (3, 3, 16, 16)
    assert [b.shape for b in batch["boxes"]] == [(0, 4), (1, 4), (3, 4)]
    assert [lab.tolist() for lab in batch["labels"]] == [[], [0], [0, 1, 2]]
    assert batch["mask"].shape == (3, 16, 16) and batch["mask"].dtype == torch.int64
    assert batch["names"] == ["pos"] * 3
    assert collate([sample_with(1, True), sample_with(1, False)])["mask"] is None


def make_paired(root: Path, n: int) -> Path:
    for i in range(n):
        write(root / "ir" / f"p{i:02d}.png", noise(32, 40, seed=i))
        write(root / "vi" / f"p{i:02d}.png", noise(32, 40, 3, seed=i))
    return root


def test_build_datasets_split_is_seeded_disjoint_and_honours_exclusions(tmp_path: Path) -> None:
    root = make_paired(tmp_path / "set", 10)
    section = {
        "fusion_train": [{"kind": "paired", "root": str(root)}],
        "val_fraction": 0.3,
        "crop_size": [16, 24],
        "eval_size": [32, 32],
        "exclude_names": ["p03"],
    }
    ds = build_datasets(DataConfig(**section), [], [])
    ds2 = build_datasets(DataConfig(**section), [], [])
    train = [ds["fusion_train"][i]["name"] for i in range(len(ds["fusion_train"]))]
    val = [ds["fusion_val"][i]["name"] for i in range(len(ds["fusion_val"]))]
    assert len(val) == 3 and len(train) == 6 and not set(train) & set(val) and "p03" not in train + val
    assert val == [ds2["fusion_val"][i]["name"] for i in range(3)]
    assert ds["fusion_train"][0]["ir"].shape == (1, 16, 24) and ds["fusion_val"][0]["ir"].shape == (1, 32, 32)
    named = build_datasets(DataConfig(**section | {"val_names": ["p01", "p07"]}), [], [])
    assert [named["fusion_val"][i]["name"] for i in range(2)] == ["p01", "p07"]
    assert "semantic_train" not in ds


def test_build_datasets_refuses_tno_for_fusion_training(tmp_path: Path) -> None:
    root = make_paired(tmp_path / "data" / "TNO", 2)
    section = {"fusion_train": [{"kind": "paired", "root": str(root)}], "val_fraction": 0.0}
    with pytest.raises(DataError, match="allow_eval_data"):
        build_datasets(DataConfig(**section), [], [])
    assert len(build_datasets(DataConfig(**section, allow_eval_data=True), [], [])["fusion_train"]) == 2


def test_build_datasets_semantic_msrs(tmp_path: Path) -> None:
    labels = make_msrs(tmp_path)
    spec = {"kind": "msrs", "root": str(tmp_path / "msrs"), "split": "train", "labels_dir": str(labels)}
    cfg = DataConfig(
        fusion_train=[spec], fusion_val=[spec], semantic_train=[spec], semantic_val=[spec], eval_size=[40, 80]
    )
    ds = build_datasets(cfg, ["person", "car"], [f"c{i}" for i in range(9)])
    val = ds["semantic_val"][0]
    assert val["labels"].tolist() == [0, 1] and val["mask"] is not None
    assert ds["fusion_val"][0]["boxes"].shape == (0, 4)  # fusion does not parse labels


# --- real shared data ------------------------------------------------------------------------------


@pytest.mark.skipif(not (DATA / "roadscene").is_dir(), reason="shared data folder ../shared/data is absent")
def test_real_roadscene_m3fd_llvip_smoke() -> None:
    cfg = DataConfig(
        fusion_train=[{"kind": "paired", "root": str(DATA / "roadscene")}],
        semantic_train=[{"kind": "llvip", "root": str(DATA / "llvip"), "split": "train"}],
        semantic_val=[{"kind": "m3fd", "root": str(DATA / "m3fd"), "split": "val"}],
        crop_size=[64, 96],
        eval_size=[96, 128],
        name_map={"people": "person"},
    )
    ds = build_datasets(cfg, ["person", "car"], ["unlabelled", "car", "person"])
    assert len(ds["fusion_train"]) + len(ds["fusion_val"]) == 199
    torch.manual_seed(0)
    batch = next(iter(DataLoader(ds["fusion_train"], batch_size=2, shuffle=True, collate_fn=collate)))
    assert batch["ir"].shape == (2, 1, 64, 96) and batch["visible"].shape == (2, 3, 64, 96)
    m3fd = ds["semantic_val"]
    assert len(m3fd) == 2 and all(int(m3fd[i]["labels"].max()) <= 1 for i in range(2))
    first = m3fd[0]
    assert first["ir"].shape == (1, 96, 128) and first["boxes"].shape[0] > 0
    assert float(first["boxes"][:, 2].max()) <= 128.0 and float(first["boxes"][:, 3].max()) <= 96.0
    llvip = LLVIPDataset(DATA / "llvip", "train", class_names=["person"])
    assert len(llvip) == 9 and llvip.load(0).boxes.shape == (6, 4)
    assert LLVIPDataset(DATA / "llvip", "test", class_names=["person"]).load(0).boxes.shape == (0, 4)
