"""Ctrl-C after a commit must not turn a saved change into a failure.

While a write transaction works, SIGINT interrupts it as usual (it rolls back, exit 130).
From the moment its commit starts, an interrupt is only remembered: the command finishes
printing what it did and exits 0. A command that writes again (offboarding steps, imports)
stops before its next transaction begins, so everything saved so far stays consistent.
Signal handlers belong to the main thread; elsewhere these functions do nothing.
"""

import signal
import threading
from types import FrameType

_pending = False


def _remember(_signum: int, _frame: FrameType | None) -> None:
    global _pending  # noqa: PLW0603 (a signal handler has nowhere else to write)
    _pending = True


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def defer() -> None:
    """From now on a SIGINT is remembered, not raised."""
    if _in_main_thread():
        signal.signal(signal.SIGINT, _remember)


def resume() -> None:
    """SIGINT raises KeyboardInterrupt again; one remembered since :func:`defer` is raised now."""
    global _pending  # noqa: PLW0603
    if not _in_main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def reset() -> None:
    """At the end of a command: the default handler, nothing remembered."""
    global _pending  # noqa: PLW0603
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _pending = False


def signalpoint(name: str) -> None:
    """Test hook: send SIGINT to this process at ``name`` when ``GOVERN_TEST_SIGINTPOINT`` names it."""
    import os

    if os.environ.get("GOVERN_TEST_SIGINTPOINT") == name:
        os.kill(os.getpid(), signal.SIGINT)
