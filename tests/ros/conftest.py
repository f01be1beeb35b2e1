"""ROS tests: marked `ros`; skipped with the reason when rclpy or vision_msgs cannot be imported,
unless FUSION_REQUIRE_ROS=1 (CI with ROS), which turns the missing import into a failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def _ros_import_error() -> str | None:
    try:
        import rclpy  # noqa: F401
        import vision_msgs.msg  # noqa: F401
    except ImportError as err:
        return str(err)
    return None


ROS_IMPORT_ERROR = _ros_import_error()
REASON = (
    f"ROS 2 not importable ({ROS_IMPORT_ERROR}); run scripts/setup.sh and `. scripts/env.sh` "
    "(vision_msgs is built in ros2_ws/)"
)


class _UnavailableModule(pytest.Module):
    """Stands in for a test module that would fail to import without ROS."""

    def collect(self) -> Iterator[Any]:
        if os.environ.get("FUSION_REQUIRE_ROS") == "1":
            pytest.fail(f"FUSION_REQUIRE_ROS=1 but {REASON}", pytrace=False)
        pytest.skip(REASON, allow_module_level=True)
        yield from ()


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if ROS_IMPORT_ERROR is None or not module_path.name.startswith("test_"):
        return None
    return _UnavailableModule.from_parent(parent, path=module_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.ros)
