"""SIGINT and SIGTERM -> a clean, bounded stop, for the node and every long-running command.

A process whose parent ignores SIGINT (a background job `cmd &`, nohup, some CI runners and
service managers) inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler;
SIGTERM (what launch escalates to, and what systemd and docker send) ends Python at once,
without `finally` blocks. `stop_on_signals()` installs one handler for both, whatever was
inherited: the first signal raises `Stopped` (a KeyboardInterrupt, so the usual
`except KeyboardInterrupt` idiom catches it) in the main thread, and `finally` blocks and context
managers then join workers and close publishers and bag writers. A repeated signal within
SHUTDOWN_BOUND_S is the same request (a terminal's Ctrl-C reaches the whole process group, and the
demo forwards it to its node as well); one after that exits at once, for a stop that hangs.

An exception raised by a signal handler can be swallowed where it lands (inside an import of a
compiled module, a finalizer), so long loops also call `raise_if_stopped()` once per iteration: a
safe point that raises `Stopped` again once a signal has come. Where it may land inside a binding
that turns it into another error (rclpy's executor taking a message: pybind11 reports "Unable to
convert call argument"), `stop_on_signals(interrupt=False)` only records the signal, and the loop's
`raise_if_stopped()` raises it at the next wake-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The promise: a process stops within this many seconds of the first signal, once its main() runs.
SHUTDOWN_BOUND_S = 2.0
_received: list[tuple[int, float]] = []  # (signal, monotonic time) in stop_on_signals(); process-wide


class Stopped(KeyboardInterrupt):
    """Raised in the main thread by the first SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)

    @property
    def exit_status(self) -> int:
        """The shell's convention for a command ended by this signal (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum


@contextmanager
def stop_on_signals(*, interrupt: bool = True) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Stopped`; the previous handlers come back after.

    interrupt=False: the handler only records the signal and `raise_if_stopped()` raises it; the
    block must then call that at least every SHUTDOWN_BOUND_S (a loop that wakes up often).
    Call it from the main thread (Python runs signal handlers only there).
    """
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def handler(signum: int, _frame: FrameType | None) -> None:
        if not _received:
            _received.append((signum, time.monotonic()))
            if interrupt:
                raise Stopped(signum)
            return
        if time.monotonic() - _received[0][1] > SHUTDOWN_BOUND_S:
            print(f"{signal.Signals(signum).name} again: exiting without a clean stop", file=sys.stderr)
            os._exit(128 + signum)

    _received.clear()
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            if old is not None:  # None: set outside Python; ours then stays (it only raises Stopped)
                signal.signal(signum, old)
        _received.clear()


def raise_if_stopped() -> None:
    """Raise `Stopped` when a stop signal has come (call it once per iteration of a long loop)."""
    if _received:
        raise Stopped(_received[0][0])


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float) -> int:
    """SIGINT `proc` and wait up to `timeout` s for it; SIGKILL it when it does not stop. Exit code.

    Never leaves the child running, so an interrupted parent or a failed test leaves no orphan.
    """
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
    finally:  # also when this process is stopped meanwhile
        if proc.poll() is None:
            proc.kill()
            proc.wait()
