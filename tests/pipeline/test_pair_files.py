"""Pair discovery on disk (fusion_node/pipeline/pair_files.py): the rule every tool shares."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from fusion_node.pipeline.pair_files import PairFolderError, find_pairs, list_images, match_pairs, read_pair


def touch(root: Path, *names: str) -> None:
    """Empty files (discovery never reads them)."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()


def names_of(pairs: list) -> list[tuple[str, str, str]]:
    return [(p.name, p.ir.name, p.visible.name) for p in pairs]


def test_names_match_across_suffixes_and_case(tmp_path: Path) -> None:
    touch(tmp_path, "ir/b.png", "vi/b.jpg", "ir/a.BMP", "vi/a.tiff", "ir/notes.txt", "vi/README.md")
    assert names_of(find_pairs(tmp_path)) == [("a", "a.BMP", "a.tiff"), ("b", "b.png", "b.jpg")]


def test_unpartnered_images_are_skipped_with_a_warning_or_refused_when_strict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    touch(tmp_path, "ir/a.png", "vi/a.png", "ir/only_ir.png", "vi/only_vi.png")
    with caplog.at_level(logging.WARNING, logger="fusion_node.pipeline.pair_files"):
        assert [p.name for p in find_pairs(tmp_path)] == ["a"]
    assert "2 images without a partner" in caplog.text and "only_ir" in caplog.text
    with pytest.raises(PairFolderError, match=r"2 images .* no partner.*only_ir.*only_vi"):
        find_pairs(tmp_path, strict=True)


def test_llvip_layout_keeps_split_folders_in_the_name(tmp_path: Path) -> None:
    touch(
        tmp_path,
        *(f"{kind}/{split}/010001.jpg" for kind in ("infrared", "visible") for split in ("test", "train")),
    )
    pairs = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["test/010001", "train/010001"]  # the same stem twice: two pairs
    assert all(p.ir.parent.name == p.visible.parent.name for p in pairs)
    assert all(p.ir.parts[-3] == "infrared" and p.visible.parts[-3] == "visible" for p in pairs)


def test_ir_vi_wins_when_both_layouts_exist(tmp_path: Path) -> None:
    touch(tmp_path, "ir/a.png", "vi/a.png", "infrared/b.png", "visible/b.png")
    assert [p.name for p in find_pairs(tmp_path)] == ["a"]


def test_match_pairs_looks_only_at_the_folders_themselves(tmp_path: Path) -> None:
    touch(tmp_path, "Ir/a.png", "Vis/a.png", "Ir/sub/b.png", "Vis/sub/b.png")  # M3FD's folder names
    assert [p.name for p in match_pairs(tmp_path / "Ir", tmp_path / "Vis")] == ["a"]
    assert [p.name for p in match_pairs(tmp_path / "Ir", tmp_path / "Vis", recursive=True)] == ["a", "sub/b"]


def test_unusable_folders_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(PairFolderError, match=r"neither ir/ \+ vi/ nor infrared/ \+ visible/"):
        find_pairs(tmp_path)
    touch(tmp_path, "ir/a.png", "vi/b.png")
    with pytest.raises(PairFolderError, match="no IR/visible images with matching names"):
        find_pairs(tmp_path)
    touch(tmp_path, "ir/a.jpg")
    with pytest.raises(PairFolderError, match="two images named 'a'"):
        list_images(tmp_path / "ir")
    with pytest.raises(PairFolderError, match="does not exist"):
        list_images(tmp_path / "missing")
    touch(tmp_path / "empty", "ir/a.png", "vi/a.png")
    with pytest.raises(PairFolderError, match=r"cannot read the pair .*a\.png"):
        read_pair(find_pairs(tmp_path / "empty")[0])  # empty files are no images


def test_read_pair_gives_what_cameras_publish(data_dir: Path) -> None:
    ir, visible = read_pair(find_pairs(data_dir / "msrs_samples")[0])
    assert ir.dtype == visible.dtype == np.uint8
    assert ir.shape == visible.shape[:2] and visible.shape[2] == 3  # mono8 and bgr8
