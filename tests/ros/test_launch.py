"""fusion.launch.py run as `ros2 launch` runs it: a real launch.LaunchService (tests/ros/run_launch.py)
starting the node from the colcon install, over real DDS on this module's own local-only domain.

`launch`/`launch_ros` are the distribution's where it has them, else the upstream sources in
../shared/vendor/ros2_launch (see its README; scripts/setup.sh all builds composition_interfaces).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from install_tree import installed_env, skip_or_fail
from rclpy.parameter_client import AsyncParameterClient
from ros_harness import REPO, Camera, Process, RosClient, client, domain_id, fresh, process_environ, ros_env
from sensor_msgs.msg import Image

from fusion_node import defaults
from fusion_node.shutdown import SHUTDOWN_BOUND_S

HERE = Path(__file__).resolve().parent
VENDOR = REPO / ".." / "shared" / "vendor" / "ros2_launch"
OFFSET = 1
NAMESPACE = "/robot1"
NODE = f"{NAMESPACE}/fusion_node"
STARTUP_S = 60.0  # launch, the node's imports and its model load, on a loaded 2-core machine
# launch escalates SIGINT -> SIGTERM -> SIGKILL after SHUTDOWN_BOUND_S each (fusion.launch.py).
LAUNCH_STOP_S = 2 * SHUTDOWN_BOUND_S + 1.0


def launch_pythonpath() -> list[str]:
    """PYTHONPATH entries that make `launch` and `launch_ros` importable (none where they are)."""
    if importlib.util.find_spec("launch_ros") is not None:
        return []
    if not VENDOR.is_dir():
        skip_or_fail(f"launch_ros is not importable and {VENDOR.resolve()} (its upstream sources) is missing")
    for module in ("osrf_pycommon", "composition_interfaces"):
        if importlib.util.find_spec(module) is None:
            skip_or_fail(f"{module} (the upstream launch sources need it) is missing: scripts/setup.sh all")
    return [str(VENDOR / "launch"), str(VENDOR / "launch_ros")]


def start_launch(prefix: Path, cwd: Path, *arguments: str) -> Process:
    """run_launch.py on the installed fusion.launch.py, with the install's environment."""
    env = installed_env(prefix, ros_env(domain_id(OFFSET)))
    env["PYTHONPATH"] = os.pathsep.join([*launch_pythonpath(), env["PYTHONPATH"]])
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # the launch file's own choice is tested
    launch_file = prefix / "share" / "fusion_node" / "launch" / "fusion.launch.py"
    command = [sys.executable, str(HERE / "run_launch.py"), str(launch_file), *arguments]
    return Process(command, env, cwd=cwd, group=True)


def poll(check: Callable[[], Any], timeout: float, what: str, launched: Process) -> Any:
    """The first truthy `check()` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; launch output:\n{launched.output}")


@pytest.fixture(scope="module")
def launched(
    colcon_install: Path, contract_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """The launch file with a user's params file, a namespace and one parameter argument."""
    tmp = tmp_path_factory.mktemp("launch")
    params_file = tmp / "user_params.yaml"
    parameters = {
        "model_path": str(contract_model()),
        "ir_topic": "from_the_file/image_raw",  # the ir_topic argument wins over this
        "visible_topic": "/camera/image_raw",  # no argument: the file's value stands
        "score_threshold": 0.2,
        "agc_mode": "off",
        "reliability": "reliable",
    }
    params_file.write_text(yaml.safe_dump({"/**/fusion_node": {"ros__parameters": parameters}}))
    arguments = (f"params_file:={params_file}", f"namespace:={NAMESPACE}", "ir_topic:=/thermal/image_raw")
    with start_launch(colcon_install, tmp, *arguments) as process:
        yield process


@pytest.fixture(scope="module")
def ros(launched: Process) -> Iterator[RosClient]:
    with client(domain_id(OFFSET)) as ros:
        poll(
            lambda: ("fusion_node", NAMESPACE) in ros.node.get_node_names_and_namespaces(),
            STARTUP_S,
            f"node {NODE}",
            launched,
        )
        yield ros


def test_file_values_stand_and_arguments_win(launched: Process, ros: RosClient) -> None:
    params = AsyncParameterClient(ros.node, NODE)
    assert params.wait_for_services(timeout_sec=10.0)
    names = ["ir_topic", "visible_topic", "score_threshold", "backend"]
    future = params.get_parameters(names)
    poll(future.done, 10.0, "get_parameters", launched)
    values = dict(zip(names, (v.string_value or v.double_value for v in future.result().values), strict=True))
    assert values == {
        "ir_topic": "/thermal/image_raw",  # the argument, over the file
        "visible_topic": "/camera/image_raw",  # the file, not a launch default
        "score_threshold": 0.2,  # the file
        "backend": defaults.BACKEND,  # neither: the node's default
    }


def test_outputs_flow_in_the_namespace(launched: Process, ros: RosClient) -> None:
    ros.subscribe(Image, f"{NODE}/fused")
    fused = fresh(Camera(ros), f"{NODE}/fused")
    assert fused.encoding == "bgr8" and fused.height > 0


def node_environ(prefix: Path) -> dict[str, str]:
    """The environment of the launched fusion_node process (found by its installed executable)."""
    executable = str(prefix / "lib" / "fusion_node" / "fusion_node")
    return process_environ(lambda argv: executable in argv and f"__ns:={NAMESPACE}" in argv)


def test_node_gets_the_large_image_dds_profile(
    colcon_install: Path, launched: Process, ros: RosClient
) -> None:
    profile = colcon_install / "share" / "fusion_node" / "config" / "fastdds_large_images.xml"
    assert profile.is_file()
    assert node_environ(colcon_install)["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profile)


def test_ctrl_c_stops_the_launch_and_the_node_cleanly(launched: Process, ros: RosClient) -> None:
    """Last in this module: SIGINT to the launch's process group, as Ctrl-C in its terminal sends it."""
    code, seconds = launched.stop(signal.SIGINT, timeout=LAUNCH_STOP_S)
    assert code == 0, launched.output
    assert "shut down on SIGINT" in launched.output  # the node's own clean stop...
    assert "SIGTERM" not in launched.output and "SIGKILL" not in launched.output  # ...needed no escalation
    assert seconds <= LAUNCH_STOP_S
    assert "Traceback" not in launched.output, launched.output


def test_missing_params_file_fails_the_launch(colcon_install: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with start_launch(colcon_install, tmp_path, f"params_file:={missing}") as process:
        assert process.wait(timeout=STARTUP_S) != 0
    assert f"params_file '{missing}' does not exist" in process.output
