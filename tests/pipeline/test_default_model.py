"""Where the default model is found: package data first (no ROS environment needed), then ament."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fusion_node.pipeline import ModelError, default_model_path
from fusion_node.pipeline import model as model_module
from fusion_node.pipeline.model import DEFAULT_MODEL, MODEL_ENV

REPO = Path(__file__).resolve().parents[2]
ROS_VARIABLES = ("AMENT_", "COLCON_", "ROS_", "PYTHONPATH")  # what sourcing a ROS setup file sets
# Builds the pipeline with every default, as a user of plain Python would, and says what it loaded.
BUILD_DEFAULT_PIPELINE = """
import fusion_node
from fusion_node.pipeline import FusionPipeline, default_model_path
FusionPipeline()
print(fusion_node.__file__)
print(default_model_path())
"""


def _ros_free_env() -> dict[str, str]:
    """This environment without ROS's variables or a configured model (scripts/env.sh not sourced)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ROS_VARIABLES) and k != MODEL_ENV}


def _build_default_pipeline(env: dict[str, str], cwd: Path) -> tuple[Path, Path]:
    """(fusion_node/__init__.py, default model) of a FusionPipeline() built in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", BUILD_DEFAULT_PIPELINE], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    package, model = done.stdout.split()
    return Path(package), Path(model)


def test_pipeline_finds_its_model_without_ros_environment(tmp_path: Path) -> None:
    package, model = _build_default_pipeline(_ros_free_env(), cwd=tmp_path)
    assert model == package.parent / DEFAULT_MODEL
    assert model.resolve() == REPO / "models" / "fusion_rt.onnx"  # the checkout's link to the one copy


def test_built_package_ships_the_model(tmp_path: Path) -> None:
    """The wheel pip builds carries the model itself, so an install found through no checkout works."""
    # setuptools reads DIST_EXTRA_CONFIG: its build and egg-info folders go to tmp_path, not the checkout.
    extra_config = tmp_path / "build.cfg"
    extra_config.write_text(f"[build]\nbuild_base={tmp_path / 'build'}\n[egg_info]\negg_base={tmp_path}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-qw", tmp_path, REPO],
        check=True,
        cwd=tmp_path,
        env=os.environ | {"DIST_EXTRA_CONFIG": str(extra_config)},
    )
    (wheel,) = tmp_path.glob("fusion_node-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    shipped = site / "fusion_node" / DEFAULT_MODEL
    assert not shipped.is_symlink() and shipped.read_bytes() == (REPO / "models/fusion_rt.onnx").read_bytes()
    package, model = _build_default_pipeline(_ros_free_env() | {"PYTHONPATH": str(site)}, cwd=tmp_path)
    assert package == site / "fusion_node" / "__init__.py" and model == shipped


def test_ament_share_is_the_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without package data (as in a colcon install without it), the package's ament share is used."""
    prefix = tmp_path / "install"
    (prefix / "share/ament_index/resource_index/packages").mkdir(parents=True)
    (prefix / "share/ament_index/resource_index/packages/fusion_node").touch()
    installed = prefix / "share/fusion_node" / DEFAULT_MODEL
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b"onnx")
    constants = pytest.importorskip("ament_index_python.constants", reason="ament_index_python: ROS 2")
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setattr(model_module, "PACKAGE_DIR", tmp_path / "no_package_data")
    monkeypatch.setenv(constants.AMENT_PREFIX_PATH_ENV_VAR, str(prefix))
    assert default_model_path() == installed


def test_no_model_and_no_ros_environment_is_a_model_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [*os.environ]:
        if name.startswith(ROS_VARIABLES) or name == MODEL_ENV:
            monkeypatch.delenv(name)
    monkeypatch.setattr(model_module, "PACKAGE_DIR", tmp_path)
    with pytest.raises(ModelError, match=r"tried .*models/fusion_rt\.onnx\);.*fusion-export"):
        default_model_path()
