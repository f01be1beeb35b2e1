#!/usr/bin/env bash
# The test command: set up (runtime + training + test tools), lint, type-check, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all
. scripts/env.sh
export FUSION_REQUIRE_ROS=1   # ROS tests fail instead of skipping when rclpy/vision_msgs are missing
ruff check .
mypy
python -m pytest "$@"
