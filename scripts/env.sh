# Source me: activates .venv and the ros2_ws overlay (vision_msgs) when it was built.
_fusion_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$_fusion_root/${VENV:-.venv}/bin/activate"
if [ -f "$_fusion_root/ros2_ws/install/setup.bash" ]; then
  _u=$-; set +u
  . "$_fusion_root/ros2_ws/install/setup.bash"
  case $_u in *u*) set -u ;; esac
fi
unset _fusion_root _u
