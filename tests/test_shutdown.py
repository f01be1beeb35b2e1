"""stop_on_signals in this process: SIGINT and SIGTERM raise Stopped, whatever was inherited."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from fusion_node.shutdown import SHUTDOWN_BOUND_S, Stopped, raise_if_stopped, stop_on_signals, stop_process


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_raises_stopped_even_when_sigint_was_ignored(signum: signal.Signals, status: int) -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job inherits it
    try:
        with pytest.raises(Stopped) as stopped, stop_on_signals():
            os.kill(os.getpid(), signum)
            signal.sigtimedwait([], 0)  # no-op system call: the handler runs before this returns
        assert (stopped.value.name, stopped.value.exit_status) == (signum.name, status)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # restored after the block
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_swallowed_stop_is_raised_again_at_the_next_safe_point() -> None:
    with pytest.raises(Stopped, match="SIGTERM"), stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)
        except Stopped:
            pass  # what an import or a finalizer does to it
        raise_if_stopped()
    raise_if_stopped()  # outside the block: nothing pending


def test_stop_process_kills_a_child_that_ignores_sigint() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        assert stop_process(child, timeout=SHUTDOWN_BOUND_S) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()


def test_a_repeated_signal_within_the_bound_is_the_same_request() -> None:
    cleaned_up = False
    with pytest.raises(Stopped, match="SIGINT"), stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0)
        finally:  # cleanup in progress: a second SIGINT (e.g. Ctrl-C to the group) must not break it
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0)
            cleaned_up = True
    assert cleaned_up


def test_without_interrupt_the_signal_waits_for_the_next_safe_point() -> None:
    """What the node's spin loop uses: nothing is raised inside the code the signal lands in."""
    with pytest.raises(Stopped, match="SIGINT"), stop_on_signals(interrupt=False):
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)  # the handler has run by now, and raised nothing
        landed_cleanly = True
        raise_if_stopped()
    assert landed_cleanly
