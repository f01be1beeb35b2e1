"""Start fusion_node (and optionally rviz2).

    ros2 launch fusion_node fusion.launch.py ir_topic:=/thermal/image_raw visible_topic:=/camera/image_raw
    ros2 launch fusion_node fusion.launch.py params_file:=my_params.yaml use_rviz:=true

The topic, model and backend arguments win over the same keys in params_file.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from fusion_node import defaults


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("fusion_node")
    arguments = [
        DeclareLaunchArgument(
            "ir_topic", default_value=defaults.IR_TOPIC, description="Infrared image topic."
        ),
        DeclareLaunchArgument(
            "visible_topic", default_value=defaults.VISIBLE_TOPIC, description="Visible image topic."
        ),
        DeclareLaunchArgument(
            "model_path", default_value="", description="ONNX model or engine; empty = default model."
        ),
        DeclareLaunchArgument(
            "backend", default_value=defaults.BACKEND, description="onnxruntime | tensorrt."
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "params.yaml"),
            description="Parameter file (fusion_node: ros__parameters: ...).",
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="Follow /clock (bag replay)."
        ),
        DeclareLaunchArgument("use_rviz", default_value="false", description="Also start rviz2."),
        DeclareLaunchArgument(
            "rviz_config",
            default_value=os.path.join(share, "config", "fusion.rviz"),
            description="rviz2 config.",
        ),
    ]
    node = Node(
        package="fusion_node",
        executable="fusion_node",
        name="fusion_node",
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "ir_topic": LaunchConfiguration("ir_topic"),
                "visible_topic": LaunchConfiguration("visible_topic"),
                # value_type=str: an empty or numeric-looking string must stay a string.
                "model_path": ParameterValue(LaunchConfiguration("model_path"), value_type=str),
                "backend": LaunchConfiguration("backend"),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
            },
        ],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return LaunchDescription([*arguments, node, rviz])
