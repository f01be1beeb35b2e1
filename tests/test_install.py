"""What a robot gets: the ROS package built by colcon ships the runtime, not training, and its
commands work from the install; training is its own distribution (training/pyproject.toml)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from install_tree import REPO, installed_env, site_packages

TRAINING_COMMANDS = {"fusion-train", "fusion-eval", "fusion-export"}


def run_installed(prefix: Path, command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """An executable of the install (lib/fusion_node/COMMAND), with the install's environment."""
    return subprocess.run(
        [str(prefix / "lib" / "fusion_node" / command), *args],
        env=installed_env(prefix),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_install_ships_the_runtime_without_training(colcon_install: Path) -> None:
    modules = site_packages(colcon_install)
    assert (modules / "fusion_node" / "ros" / "node.py").is_file()
    assert (modules / "fusion_node" / "sample").is_dir() and (modules / "fusion_node" / "models").is_dir()
    assert not (modules / "training").exists()
    assert not any(name.startswith("training") for name in (p.name for p in modules.iterdir()))
    commands = {p.name for p in (colcon_install / "lib" / "fusion_node").iterdir()}
    assert {"fusion_node", "fusion-node"} <= commands and not commands & TRAINING_COMMANDS
    share = colcon_install / "share" / "fusion_node"
    for path in ("package.xml", "launch/fusion.launch.py", "config/params.yaml", "config/fusion.rviz"):
        assert (share / path).is_file(), path
    index = colcon_install / "share" / "ament_index" / "resource_index" / "packages"
    assert (index / "fusion_node").is_file()  # how `ros2 launch` and ament_index find the package


def test_bench_runs_from_the_install(colcon_install: Path, tmp_path: Path) -> None:
    """Outside the checkout: the installed modules, bundled sample frames and default model."""
    where = subprocess.run(
        [sys.executable, "-c", "import fusion_node; print(fusion_node.__file__)"],
        env=installed_env(colcon_install),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(colcon_install)
    helped = run_installed(colcon_install, "fusion-node", "bench", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "--iterations" in helped.stdout, helped.stderr
    ran = run_installed(
        colcon_install, "fusion-node", "bench", "--iterations", "1", "--warmup", "0", "--json", cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["frames"] == len(list((REPO / "fusion_node" / "sample" / "ir").iterdir()))
    assert out["ours"]["fps"] > 0


def test_training_is_its_own_distribution(tmp_path: Path) -> None:
    """Its wheel holds every training package on disk and the three commands; built from a copy,
    so the checkout gets no build/ folder inside the `training` package."""
    source = tmp_path / "training"
    shutil.copytree(REPO / "training", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("fusion_training-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    on_disk = {
        "/".join(("training", *init.parent.relative_to(REPO / "training").parts))
        for init in (REPO / "training").rglob("__init__.py")
    }
    assert {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")} == on_disk
    assert any(name.startswith("training/configs/") and name.endswith(".yaml") for name in names)
    entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert {line.split("=")[0].strip() for line in entry_points.splitlines()} >= TRAINING_COMMANDS
    metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: fusion_node" in metadata.splitlines()  # the runtime it trains models for


def test_every_run_dependency_has_a_rosdep_key_or_the_robot_requirements(colcon_install: Path) -> None:
    """What the installed package requires comes from package.xml (rosdep, apt) or, where no apt
    package exists, from requirements/robot.txt (the README's venv)."""
    rosdep_key = {  # pip name -> rosdep key (ros/rosdistro rosdep/python.yaml)
        "numpy": "python3-numpy",
        "opencv-python-headless": "python3-opencv",
        "pyyaml": "python3-yaml",
        "tqdm": "python3-tqdm",
    }
    (requires,) = site_packages(colcon_install).glob("fusion_node-*.egg-info/requires.txt")
    run_requires = requires.read_text().split("\n[")[0].split()  # before the extras' sections
    names = {re.split(r"[<>=!~ ;\[]", line, maxsplit=1)[0].lower() for line in run_requires}
    exec_depends = {e.text for e in ElementTree.parse(REPO / "package.xml").iter("exec_depend")}
    robot = {
        re.split(r"[<>=!~ ;\[]", line, maxsplit=1)[0].lower()
        for line in (REPO / "requirements" / "robot.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for name in names:
        assert rosdep_key.get(name) in exec_depends or name in robot, name
    assert {"onnxruntime", "rosbags"} <= robot and not robot & set(rosdep_key) - {"numpy"}
