"""This repository installed as a robot installs it: `colcon build` (ament_python) into a temporary prefix.

Used by tests/test_install.py (what the package ships) and tests/ros/test_launch.py (the launch file
run from the install, as `ros2 launch` does).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "fusion_node"


def skip_or_fail(reason: str) -> None:
    """Skip with `reason`; fail instead under FUSION_REQUIRE_ROS=1 (CI with ROS and its tools)."""
    if os.environ.get("FUSION_REQUIRE_ROS") == "1":
        pytest.fail(f"FUSION_REQUIRE_ROS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def colcon_build(workspace: Path) -> Path:
    """`colcon build` of this package with build, install and log under `workspace`; its install prefix."""
    if importlib.util.find_spec("colcon_core") is None:
        skip_or_fail("colcon is not installed (scripts/setup.sh installs it where ROS 2 comes from PyPI)")
    colcon = [sys.executable, "-m", "colcon"]  # this Python: the installed commands' shebang names it
    listed = subprocess.run([*colcon, "list", "--paths", str(REPO)], capture_output=True, text=True)
    # ROS' build type, read from package.xml (colcon quietly falls back to plain "python" without one)
    assert "(ros.ament_python)" in listed.stdout, listed.stdout + listed.stderr  # also a failed run
    result = subprocess.run(
        [
            *colcon, "--log-base", str(workspace / "log"),
            "build", "--paths", str(REPO),
            "--build-base", str(workspace / "build"), "--install-base", str(workspace / "install"),
            "--event-handlers", "console_direct+",
        ],
        capture_output=True, text=True, timeout=300, cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return workspace / "install" / PACKAGE


def site_packages(prefix: Path) -> Path:
    """Where colcon put the package's Python modules under `prefix` (lib/pythonX.Y/site-packages)."""
    from colcon_core.python_install_path import get_python_install_path  # colcon's own scheme choice

    return Path(get_python_install_path("purelib", {"base": str(prefix), "platbase": str(prefix)}))


def installed_env(prefix: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this environment) with the install in front, as sourcing its setup.bash does."""
    env = dict(os.environ if base is None else base)
    for name, path in (("AMENT_PREFIX_PATH", prefix), ("PYTHONPATH", site_packages(prefix))):
        env[name] = os.pathsep.join(p for p in (str(path), env.get(name, "")) if p)
    return env
