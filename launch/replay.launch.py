"""Play a rosbag2 into fusion_node and show the outputs in rviz2.

    ros2 launch fusion_node replay.launch.py bag:=recording.mcap \
        ir_topic:=/thermal/image_raw visible_topic:=/camera/image_raw

Every argument of fusion.launch.py applies (it is included, not copied); here use_rviz and
use_sim_time default to true and the bag is played with --clock, so latencies are in bag time.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("fusion_node")
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 to play (folder or .mcap/.db3 file)."),
            DeclareLaunchArgument("rate", default_value="1.0", description="Playback rate."),
            # Declared before the include, so these defaults replace fusion.launch.py's.
            DeclareLaunchArgument("use_rviz", default_value="true", description="Also start rviz2."),
            DeclareLaunchArgument(
                "use_sim_time", default_value="true", description="Follow the bag's /clock."
            ),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(share, "launch", "fusion.launch.py"))
            ),
            ExecuteProcess(
                cmd=[
                    "ros2",
                    "bag",
                    "play",
                    LaunchConfiguration("bag"),
                    "--clock",
                    "--rate",
                    LaunchConfiguration("rate"),
                ],
                output="screen",
            ),
        ]
    )
