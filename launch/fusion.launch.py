"""Start fusion_node (and optionally rviz2).

    ros2 launch fusion_node fusion.launch.py ir_topic:=/thermal/image_raw visible_topic:=/camera/image_raw
    ros2 launch fusion_node fusion.launch.py params_file:=my_params.yaml namespace:=robot1 use_rviz:=true

Parameters come from params_file (default: the package's config/params.yaml). The arguments named
after parameters (ir_topic, visible_topic, model_path, backend, device, autostart, use_sim_time) are empty by
default and then set nothing: the file's value stands. Given on the command line, they win over it.
In params_file, key the node `/**/fusion_node` (any namespace) or by its full name
(`/robot1/fusion_node`): a bare `fusion_node` matches the root namespace only.

Unless FASTDDS_DEFAULT_PROFILES_FILE is set already, the node (and rviz2) get the package's
config/fastdds_large_images.xml (fusion_node/ros/dds.py says why). Camera drivers on the same
machine should use it too (the file says how).

rviz2 (use_rviz:=true) starts in the node's namespace, so the relative topics of config/fusion.rviz
resolve to this node's outputs. On Ctrl-C the node stops within SHUTDOWN_BOUND_S; launch escalates
to SIGTERM, then SIGKILL, after that long each.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from fusion_node.ros import dds
from fusion_node.ros.params import SPECS
from fusion_node.shutdown import SHUTDOWN_BOUND_S

# Node parameters that an argument of the same name sets when given: name -> (type, description).
_SPECS = {spec.name: spec for spec in SPECS}
OVERRIDES: dict[str, tuple[type, str]] = {
    **{
        name: (type(_SPECS[name].default), _SPECS[name].description)
        for name in ("ir_topic", "visible_topic", "model_path", "backend", "device", "autostart")
    },
    "use_sim_time": (bool, "Follow /clock (bag replay): true or false."),
}
_STOP_TIMEOUT = str(SHUTDOWN_BOUND_S)


def _given_overrides(context: LaunchContext) -> dict[str, ParameterValue]:
    """The parameter arguments given (non-empty), typed as the node declares them."""
    given = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDES}
    # value_type: "1.0" or "" must not turn into a number or None by YAML parsing.
    return {
        name: ParameterValue(value, value_type=OVERRIDES[name][0]) for name, value in given.items() if value
    }


def _nodes(context: LaunchContext) -> list[Node]:
    params_file = LaunchConfiguration("params_file").perform(context)
    if not os.path.isfile(params_file):  # launch_ros would only warn and start the node without it
        raise FileNotFoundError(f"params_file {params_file!r} does not exist: pass an existing YAML file")
    overrides = _given_overrides(context)
    parameters: list[Any] = [params_file]
    if overrides:  # listed after the file: launch_ros passes both in order, the later one wins
        parameters.append(overrides)
    common = {
        "additional_env": dds.profile_env(Path(get_package_share_directory("fusion_node")) / dds.PROFILE),
        "namespace": LaunchConfiguration("namespace"),
        "sigterm_timeout": _STOP_TIMEOUT,
        "sigkill_timeout": _STOP_TIMEOUT,
    }
    node = Node(
        package="fusion_node",
        executable="fusion_node",
        name="fusion_node",
        output="screen",
        emulate_tty=True,
        parameters=parameters,
        **common,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        parameters=[{"use_sim_time": overrides["use_sim_time"]}] if "use_sim_time" in overrides else [],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
        **common,
    )
    return [node, rviz]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("fusion_node")
    overridable = [
        DeclareLaunchArgument(
            name, default_value="", description=f"{description} Empty: params_file's value stands."
        )
        for name, (_, description) in OVERRIDES.items()
    ]
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "params.yaml"),
                description="Parameter file (/**/fusion_node: ros__parameters: ...).",
            ),
            *overridable,
            DeclareLaunchArgument(
                "namespace", default_value="", description="ROS namespace of the node (and rviz2)."
            ),
            DeclareLaunchArgument("use_rviz", default_value="false", description="Also start rviz2."),
            DeclareLaunchArgument(
                "rviz_config",
                default_value=os.path.join(share, "config", "fusion.rviz"),
                description="rviz2 config.",
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
