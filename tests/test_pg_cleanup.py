"""The throwaway PostgreSQL cluster dies with the process that started it, however it ends.

Each test starts a child Python process that starts a cluster through ``pg.cluster()`` (as
the ``pg_cluster`` fixture does), kills the child, and waits a bounded time for the server
to be gone.
"""

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg import _bindir, postmaster_pid, process_alive, reap_orphans, stop_data_dir

pytestmark = pytest.mark.postgres

TESTS = Path(__file__).parent
OWNER = f"""
import json, sys, time
sys.path.insert(0, {str(TESTS)!r})
from pg import cluster

with cluster() as server:
    assert server.watchdog is not None
    sys.stdout.write(json.dumps({{"base": str(server.base), "port": server.port, "watchdog": server.watchdog.pid}}))
    sys.stdout.write("\\n")
    sys.stdout.flush()
    time.sleep(600)
"""
START_TIMEOUT = 120.0
GONE_TIMEOUT = 30.0


@dataclass
class Started:
    child: subprocess.Popen[str]
    base: Path
    port: int
    watchdog: int
    postmaster: int


def _read_line(child: subprocess.Popen[str], timeout: float) -> str:
    assert child.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"the owner process printed nothing within {timeout}s")
    line = child.stdout.readline()
    assert line, f"the owner process exited ({child.poll()}) before its cluster was up"
    return line


def _wait_until(condition: Callable[[], bool], timeout: float = GONE_TIMEOUT) -> float:
    """Poll ``condition`` until true; return the seconds it took. Fails after ``timeout``."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"still not true after {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - began


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def owner() -> Iterator[Started]:
    child = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # our signals only: nothing reaches the pytest running this test
    )
    base: Path | None = None
    try:
        info = json.loads(_read_line(child, START_TIMEOUT))
        base = Path(info["base"])
        postmaster = postmaster_pid(base / "data")
        assert postmaster is not None, "the cluster is not running"
        assert _accepts(int(info["port"]))
        yield Started(child, base, int(info["port"]), int(info["watchdog"]), postmaster)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
        if base is not None and base.exists():  # the test failed: leave nothing behind
            stop_data_dir(_bindir(), base / "data", os.geteuid() == 0)
            shutil.rmtree(base, ignore_errors=True)


def _gone(started: Started) -> bool:
    return not process_alive(started.postmaster) and not started.base.exists()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_the_cluster_dies_with_its_owner(owner: Started, signum: signal.Signals) -> None:
    owner.child.send_signal(signum)
    _wait_until(lambda: _gone(owner))
    assert not _accepts(owner.port)
    assert owner.child.wait(timeout=GONE_TIMEOUT) != 0
    _wait_until(lambda: not process_alive(owner.watchdog))


def test_a_cluster_whose_owner_and_watchdog_died_is_stopped_by_the_next_session(owner: Started) -> None:
    os.kill(owner.watchdog, signal.SIGKILL)
    _wait_until(lambda: not process_alive(owner.watchdog))
    owner.child.kill()
    owner.child.wait(timeout=GONE_TIMEOUT)
    assert process_alive(owner.postmaster), "nothing else should have stopped it"
    reap_orphans()  # what every new Cluster() does first (a concurrent xdist worker may beat us to it)
    _wait_until(lambda: _gone(owner))
    assert not _accepts(owner.port)
