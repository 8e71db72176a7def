"""Crash injection for the test suite.

``crashpoint(name)`` kills the process with SIGKILL when ``GOVERN_TEST_CRASHPOINT``
names that point: the suite uses it to prove that a crash at any step boundary
loses nothing and half-writes nothing. Unset (always, outside tests), it does nothing.
"""

import os
import signal

ENV = "GOVERN_TEST_CRASHPOINT"


def crashpoint(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
