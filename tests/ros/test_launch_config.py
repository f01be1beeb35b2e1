"""params.yaml, replay.launch.py and the rviz config against the parameters a real node declares.

fusion.launch.py itself runs under a real LaunchService in test_launch.py; replay.launch.py needs
`ros2 bag`, so it is checked by parsing it (ast).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.parameter import Parameter
from ros_harness import domain_id

from fusion_node.ros.node import FusionNode
from fusion_node.ros.params import ARRAY_PARAMETERS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def node(contract_model: Callable[..., Path]) -> Iterator[FusionNode]:
    """A real FusionNode in this process, on this module's own DDS domain."""
    context = Context()
    rclpy.init(context=context, domain_id=domain_id(3))
    model = Parameter("model_path", value=str(contract_model()))
    fusion = FusionNode(context=context, parameter_overrides=[model])
    try:
        yield fusion
    finally:
        fusion.destroy_node()
        rclpy.shutdown(context=context)


@pytest.fixture(scope="module")
def declared(node: FusionNode) -> dict[str, Any]:
    """name -> value of every parameter the node declares (defaults, but for model_path)."""
    return {name: node.get_parameter_or(name).value for name in node.list_parameters([], 0).names}


def launch_parameter_names(path: Path) -> set[str]:
    """Keys of the dict literals inside `parameters=[...]` of the launch file's Node(...) calls."""
    names: set[str] = set()
    for call in ast.walk(ast.parse(path.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
            for kw in call.keywords:
                if kw.arg == "parameters" and isinstance(kw.value, ast.List):
                    for item in kw.value.elts:
                        if isinstance(item, ast.Dict):
                            names |= {k.value for k in item.keys if isinstance(k, ast.Constant)}
    return names


def test_params_yaml_sets_every_parameter_to_its_default(declared: dict[str, Any]) -> None:
    file = yaml.safe_load((REPO / "config" / "params.yaml").read_text())
    params = file["/**/fusion_node"]["ros__parameters"]  # the node in any namespace (namespace:=...)
    # qos_overrides.<topic>.* are rclpy's, one set per topic (the file shows them in a comment)
    ours = {name for name in declared if not name.startswith("qos_overrides.")}
    ours -= {"use_sim_time", "start_type_description_service"}
    assert set(params) == ours
    for name, value in params.items():
        if name == "model_path":  # overridden by the test; its default is ""
            assert value == ""
        elif name in ARRAY_PARAMETERS:  # [] leaves the typed array unset = none
            assert value == [] and declared[name] is None
        else:
            assert value == declared[name], name


def test_replay_launch_includes_fusion_launch() -> None:
    replay = ast.parse((REPO / "launch" / "replay.launch.py").read_text())
    source = ast.unparse(replay)
    assert "fusion.launch.py" in source and "ExecuteProcess" in source and "'bag'" in source
    assert launch_parameter_names(REPO / "launch" / "replay.launch.py") == set()  # no near-copy of the node


def test_rviz_config_shows_the_node_outputs() -> None:
    config = yaml.safe_load((REPO / "config" / "fusion.rviz").read_text())["Visualization Manager"]
    topics = {d["Topic"]["Value"] for d in config["Displays"] if d["Class"] == "rviz_default_plugins/Image"}
    # relative: rviz2 runs in the node's namespace (fusion.launch.py)
    assert topics == {"fusion_node/fused", "fusion_node/debug_image", "fusion_node/segmentation/color"}
    assert config["Global Options"]["Fixed Frame"] == "visible_optical_frame"


def test_parameter_descriptors_have_descriptions_and_ranges(node: FusionNode) -> None:
    described = node.describe_parameters(["score_threshold", "slop_s", "queue_depth", "ir_topic"])
    assert all(d.description for d in described)
    score, slop, depth, topic = described
    assert (score.floating_point_range[0].from_value, score.floating_point_range[0].to_value) == (0.0, 1.0)
    assert not score.read_only and slop.read_only and topic.read_only
    assert depth.integer_range[0].from_value == 1
