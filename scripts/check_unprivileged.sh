#!/usr/bin/env bash
# CI check (issue 15): the README's demo command works for a normal user on a fresh clone.
#
# Run as root (CI does, from .ci/run): clones the committed HEAD into a temporary folder owned by a
# throw-away user and runs there, as that user with a clean environment, scripts/setup.sh (checking
# it writes nothing outside the clone and the user's caches), scripts/demo.sh (checking its outputs)
# and FusionPipeline() from plain Python. /opt/python, where root's set-up once linked the wheel
# builder's paths, is hidden from that user so a leftover link cannot make the check pass.
# Downloads are reused: root fills a wheel folder (from its pip cache) that the user's pip installs from.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "check_unprivileged: needs root to create a throw-away user (CI runs it as root); nothing run." >&2
  exit 2
fi
user=fusion-unprivileged
work=$(mktemp -d /tmp/fusion-unprivileged.XXXXXX)
repo=$work/repo home=$work/home wheels=$work/wheels
chmod 755 "$work"
created_user=
cleanup() {
  status=$?
  if [ -n "$created_user" ]; then
    find /dev/shm -maxdepth 1 -user "$user" -delete || true   # DDS and tracing segments it left
    userdel "$user"
  fi
  if [ "$status" = 0 ]; then rm -rf "$work"; else echo "check_unprivileged: FAILED; kept $work" >&2; fi
}
trap cleanup EXIT
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir "$home" --shell /usr/sbin/nologin "$user"
  created_user=1
fi

echo "[unprivileged] cloning $(git rev-parse --short HEAD) for $user into $repo"
git clone --quiet --no-hardlinks --no-checkout . "$repo"   # a copy: chown leaves this repository alone
git -C "$repo" checkout --quiet --detach "$(git rev-parse HEAD)"
echo "[unprivileged] collecting wheels for the user's pip (from root's pip cache where it has them)"
# Everything the runtime set-up installs, plus the default PEP 517 build requirements of the editable
# install: the user's pip then installs offline from this folder.
(cd "$repo" && python3 -m pip wheel -qq --wheel-dir "$wheels" \
   -r requirements/ros-pypi.txt -r requirements/ros-build.txt . setuptools wheel && git clean -fdxq)
mkdir -p "$home"
chown -R "$user:" "$repo" "$home"

# The user's environment: no root venv, ROS or CMake variables; pip installs from $wheels only.
user_env=(HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin
          PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels")
[ -n "${ROS_DOMAIN_ID:-}" ] && user_env+=(ROS_DOMAIN_ID="$ROS_DOMAIN_ID")
hide_opt_python=()
if [ -d /opt/python ]; then
  if unshare --mount true 2>/dev/null; then
    hide_opt_python=(unshare --mount --propagation private --
                     sh -c 'mount -t tmpfs -o mode=755 hidden /opt/python && exec "$@"' sh)
  else
    echo "[unprivileged] WARNING: no mount namespace here to hide /opt/python; checking with it visible" >&2
  fi
fi
as_user() {  # as_user CMD...: run CMD in the clone as the throw-away user
  "${hide_opt_python[@]}" runuser -u "$user" -- env -i "${user_env[@]}" \
    sh -c 'cd "$0" && exec "$@"' "$repo" "$@"
}

echo "[unprivileged] scripts/setup.sh as $user"
touch "$work/set-up-started"
as_user scripts/setup.sh runtime
stray=$(find /tmp /var/tmp /dev/shm "$home" -user "$user" -newer "$work/set-up-started" \
  -not -path "$repo" -not -path "$repo/*" -not -path "$home" -not -path "$home/.cache" \
  -not -path "$home/.cache/*" 2>/dev/null || true)
if [ -n "$stray" ]; then
  echo "ERROR: set-up wrote outside the clone and the user's caches:" >&2
  echo "$stray" >&2
  exit 1
fi

echo "[unprivileged] scripts/demo.sh as $user"
as_user scripts/demo.sh
as_user .venv/bin/python - <<'EOF'
"""The demo's outputs, and the default model found from plain Python with no ROS environment."""
import json
from pathlib import Path

from fusion_node.pipeline import FusionPipeline

out = Path("demo_output")
report = json.loads((out / "report.json").read_text())
assert report["frames_in"] > 0 and report["frames_out"] > 0, report
assert any((out / "outputs").glob("*.mcap")), "no outputs bag"
assert (out / "contact_sheet.png").is_file(), "no contact sheet"
FusionPipeline()
print(f"[unprivileged] demo: {report['frames_out']} pairs fused from {report['frames_in']} frames")
print("[unprivileged] FusionPipeline() from plain Python found the default model")
EOF
echo "[unprivileged] OK: set-up and demo work for a normal user on a fresh clone"
