"""Stopping a command cleanly: SIGTERM (`docker stop`, systemd) and SIGHUP (a closed terminal or SSH session)
are handled as Ctrl-C is, so each command's own clean-up runs (results so far written under names that say
so, temporary files removed) instead of the process dying with its work.

    with signals_interrupt():
        ...            # SIGINT, SIGTERM and SIGHUP raise Interrupted, a KeyboardInterrupt
    except KeyboardInterrupt as stop:
        return exit_status(stop)   # 128 + the signal's number: 130, 143, 129

Once one signal has arrived, further ones are ignored until the block ends, so a second Ctrl-C or a
`docker stop` that follows cannot cut the clean-up short. Clean-up code itself runs in `interrupts_deferred()`:
a signal arriving there is raised when it ends, not in the middle of moving files into place.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """The command was asked to stop by a signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _State:
    received: int | None = None  # the first signal of the current block
    raised = False
    deferring = 0


_state = _State()


def signal_name(stop: BaseException) -> str:
    return signal.Signals(getattr(stop, "signum", signal.SIGINT)).name


def exit_status(stop: BaseException) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + int(getattr(stop, "signum", signal.SIGINT))


def _interrupt(signum, frame) -> None:
    if _state.received is not None:
        return
    _state.received = signum
    if not _state.deferring:
        _state.raised = True
        raise Interrupted(signum)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted in the main thread while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; a caller elsewhere keeps its own
        return
    _state.received, _state.raised = None, False
    previous = {signum: signal.signal(signum, _interrupt) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """A signal that arrives inside the block (under signals_interrupt) is raised when the block ends."""
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
    if not _state.deferring and _state.received is not None and not _state.raised:
        _state.raised = True
        raise Interrupted(_state.received)
