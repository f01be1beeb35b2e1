"""The Fast DDS profile for camera-sized images, which every process of the image path needs.

Fast DDS's default 512 kB shared-memory segment is smaller than one 640×480 bgr8 frame (921 kB),
which then goes over fragmented loopback UDP and stalls (docs/benchmarks.md, "The live node").
`config/fastdds_large_images.xml` sets a 16 MB segment. The launch file gives it to the node (from
the package's share), the demo to its node and to itself (from the package data, a link to config/
in a checkout): both unless the user has chosen a profile already.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

PROFILE_ENV: Final = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE: Final = Path("config") / "fastdds_large_images.xml"  # in the share folder and the package data
PACKAGE_PROFILE: Final = Path(__file__).resolve().parents[1] / PROFILE


def profile_env(profile: Path = PACKAGE_PROFILE) -> dict[str, str]:
    """The variable to add to a process' environment: `profile`, unless $FASTDDS_DEFAULT_PROFILES_FILE
    is set already (the user's profile stands; then nothing)."""
    return {} if os.environ.get(PROFILE_ENV) else {PROFILE_ENV: str(profile)}
