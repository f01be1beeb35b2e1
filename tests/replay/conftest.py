"""Fixtures for the replay tests: small pair folders from the shared data and bags made from them."""

from __future__ import annotations

from pathlib import Path

import pytest

TNO_NAMES = ("04", "05", "06")  # three sizes: 768×576, 280×280, 475×575
LLVIP_NAMES = (("train", "010001"), ("test", "190001"))


def link_pairs(src: Path, dst: Path, names: list[tuple[str, str]]) -> Path:
    """A folder of symlinks `dst/{sub}/{name}` -> `src/{sub}/{name}` for each (sub, name)."""
    for sub, name in names:
        target = dst / sub / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(src / sub / name)
    return dst


@pytest.fixture(scope="session")
def msrs_dir(data_dir: Path) -> Path:
    """The three MSRS pairs (640×480)."""
    folder = data_dir / "msrs_samples"
    if not folder.is_dir():
        pytest.skip(f"{folder} missing")
    return folder


@pytest.fixture(scope="session")
def tno_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three TNO pairs of different sizes, as an {ir,vi}/NN.png folder."""
    src = data_dir / "tno"
    if not src.is_dir():
        pytest.skip(f"{src} missing")
    names = [(sub, f"{n}.png") for n in TNO_NAMES for sub in ("ir", "vi")]
    return link_pairs(src, tmp_path_factory.mktemp("tno"), names)


@pytest.fixture(scope="session")
def llvip_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two LLVIP pairs in its {infrared,visible}/{split}/NAME.jpg layout."""
    src = data_dir / "llvip"
    if not src.is_dir():
        pytest.skip(f"{src} missing")
    names = [(f"{kind}/{split}", f"{n}.jpg") for split, n in LLVIP_NAMES for kind in ("infrared", "visible")]
    return link_pairs(src, tmp_path_factory.mktemp("llvip"), names)
