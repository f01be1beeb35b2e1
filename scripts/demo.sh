#!/usr/bin/env bash
# Set up on a fresh machine and run the demo: the real fusion node fed the bundled sample sequence
# over DDS; outputs (mcap bag, PNGs, report) go to demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
. scripts/env.sh
fusion-node demo --output "${1:-demo_output}"
