"""Shared fixtures: the contract test model (tests/contract_model.py), the shared data folder and
the package installed by colcon (tests/install_tree.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import contract_model` in any test layout
from contract_model import make_contract_model
from install_tree import colcon_build

from training.paths import SHARED_DATA as DATA_DIR


@pytest.fixture(scope="session")
def contract_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: `contract_model(**make_contract_model options) -> Path`, one file per option set."""
    cache: dict[str, Path] = {}

    def build(**options: Any) -> Path:
        key = repr(sorted(options.items()))
        if key not in cache:
            cache[key] = make_contract_model(tmp_path_factory.mktemp("model") / "contract.onnx", **options)
        return cache[key]

    return build


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data (../shared/data from the repo root); skips when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR.resolve()}")
    return DATA_DIR


@pytest.fixture(scope="session")
def tno(data_dir: Path) -> Path:
    """The TNO benchmark with its 9 baselines' outputs and their reference metric tables."""
    path = data_dir / "tno"
    if not ((path / "baselines").is_dir() and (path / "reference_metrics").is_dir()):
        pytest.skip(f"TNO benchmark with baselines and reference metrics not found at {path}")
    return path


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's install prefix (install/fusion_node) after `colcon build`, once per session."""
    return colcon_build(tmp_path_factory.mktemp("colcon"))
