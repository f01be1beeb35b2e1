"""`ros2 launch FILE NAME:=VALUE ...` for the tests: one launch file run by a real launch.LaunchService.

The steps of ros2launch's launch_a_launch_file, without ros2cli (absent where ROS 2 comes from wheels).
"""

from __future__ import annotations

import sys

from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource


def main(argv: list[str]) -> int:
    path, *arguments = argv
    service = LaunchService(argv=arguments)
    given = [tuple(argument.split(":=", 1)) for argument in arguments]
    source = AnyLaunchDescriptionSource(path)
    service.include_launch_description(
        LaunchDescription([IncludeLaunchDescription(source, launch_arguments=given)])
    )
    return service.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
