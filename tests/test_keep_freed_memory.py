"""keep_freed_memory in a fresh process: freed frame-sized buffers are reused, not faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CODE = """
import resource, sys
import numpy as np
from fusion_node.ros.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):  # a frame's buffers (as rclpy's take makes them), alive together, then freed
    frame = [np.ones(921_600, np.uint8) for _ in range(3)]
    del frame
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_frames_are_reused_instead_of_faulted_in_again() -> None:
    default, kept = page_faults("default"), page_faults("keep")
    # 50 frames × 3 buffers × 225 pages: glibc's default faults most of them in again (~21 000 here)
    assert default > 50 * 225
    assert kept < default / 10
