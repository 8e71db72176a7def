"""A throwaway PostgreSQL cluster for the test suite, from the server binaries on the machine.

Started once per session (once per pytest-xdist worker) on a free loopback port, in its
own temporary folder, with trust authentication and fsync off (it is thrown away). As
root, the server runs as the ``postgres`` user. Missing binaries are an error, never a
skip: CI must run the PostgreSQL tier.

The cluster dies with the process that started it (its *owner*), however that ends:

- a normal end, an exception or Ctrl-C (``KeyboardInterrupt``): ``stop()`` in ``cluster()``'s
  ``finally``, and an ``atexit`` hook as a backstop;
- SIGTERM or SIGHUP: a handler stops the cluster, then lets the signal do what it did before;
- SIGKILL (or anything else that skips Python): a watchdog, this file run as a small
  process in its own session, holds the read end of a pipe whose write end only the owner
  holds. EOF on it means the owner is gone, and the watchdog stops the cluster;
- if even the watchdog was killed, the next session stops clusters whose owner (recorded
  in ``owner`` in the cluster's folder, with the process's start time against PID reuse)
  is dead, before starting its own.
"""

import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

PREFIX = "govern-pg-"
OWNER_FILE = "owner"


def _bindir() -> Path:
    candidates = [
        os.environ.get("GOVERN_TEST_PG_BINDIR", ""),
        *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed; run 'make pg-deps'")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # a zombie has exited; no one may be reaping it
        return None
    return fields[19]


def process_alive(pid: int, start_time: str | None = None) -> bool:
    """Whether ``pid`` runs (and, if given, is the process that started at ``start_time``)."""
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    current = _start_time(pid)
    if current is None:
        return False
    return start_time in (None, "", "-") or not current or current == start_time


def postmaster_pid(data: Path) -> int | None:
    """The PID recorded by the server running on ``data``, if it is still running."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        if pid > 0 and process_alive(pid):  # negative while initdb runs the server single-user
            return pid
    return None


def _pg_command(bindir: Path, as_postgres: bool, *args: str) -> list[str]:
    command = [str(bindir / args[0]), *args[1:]]
    if as_postgres:
        command = ["runuser", "-u", "postgres", "--", *command]
    return command


def stop_data_dir(bindir: Path, data: Path, as_postgres: bool) -> None:
    """Stop the server on ``data`` at once (``-m immediate``), whatever it takes."""
    if postmaster_pid(data) is None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            _pg_command(bindir, as_postgres, "pg_ctl", "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"),
            capture_output=True,
            check=False,
            timeout=60,
        )
    pid = postmaster_pid(data)
    if pid is not None:  # pg_ctl could not do it: SIGQUIT is PostgreSQL's immediate shutdown
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def reap_orphans(bindir: Path | None = None) -> list[Path]:
    """Stop and remove the clusters of owners that died without cleaning up; return their folders."""
    reaped: list[Path] = []
    for base in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            pid_text, start_time, as_postgres = (base / OWNER_FILE).read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            continue  # not ours to judge: another user's, or an owner still writing its file
        if process_alive(pid, start_time):
            continue
        stop_data_dir(bindir or _bindir(), base / "data", as_postgres == "1")
        shutil.rmtree(base, ignore_errors=True)
        reaped.append(base)
    return reaped


class Cluster:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self._as_postgres = os.geteuid() == 0
        with contextlib.suppress(OSError):
            reap_orphans(self.bindir)
        self.base = Path(tempfile.mkdtemp(prefix=PREFIX))
        # Written whole (rename) so that a concurrent reap_orphans never reads half of it.
        (self.base / "owner.tmp").write_text(
            f"{os.getpid()} {_start_time(os.getpid()) or '-'} {int(self._as_postgres)}\n"
        )
        os.replace(self.base / "owner.tmp", self.base / OWNER_FILE)
        self.data = self.base / "data"
        self.port = _free_port()
        self.watchdog: subprocess.Popen[str] | None = None
        self._stopped = False
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = _pg_command(self.bindir, self._as_postgres, *args)
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")

    def _start_watchdog(self) -> None:
        self.watchdog = subprocess.Popen(
            [sys.executable, __file__, "watch", str(self.bindir), str(self.base), str(int(self._as_postgres))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # out of the terminal's process group: Ctrl-C and group kills miss it
        )
        assert self.watchdog.stdout is not None
        if self.watchdog.stdout.readline().strip() != "ready":
            self.watchdog.kill()
            self.watchdog.wait()
            raise RuntimeError("the PostgreSQL watchdog did not start")

    def start(self) -> None:
        _register(self)
        self._start_watchdog()  # before the server exists, so no window without one
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        for attempt in range(5):
            options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
            try:
                self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "start")
                return
            except RuntimeError:
                # Another process (a sibling xdist worker's cluster) may have taken the port meanwhile.
                if attempt == 4 or postmaster_pid(self.data) is not None:
                    raise
                self.port = _free_port()

    def stop(self) -> None:
        if self._stopped:  # idempotent: the finally block, atexit and a signal handler may all call it
            return
        self._stopped = True
        stop_data_dir(self.bindir, self.data, self._as_postgres)
        shutil.rmtree(self.base, ignore_errors=True)
        if self.watchdog is not None:
            assert self.watchdog.stdin is not None
            with contextlib.suppress(OSError, ValueError):
                self.watchdog.stdin.write("done\n")
                self.watchdog.stdin.flush()
            with contextlib.suppress(OSError, ValueError):
                self.watchdog.stdin.close()
            try:
                self.watchdog.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()
                self.watchdog.wait()
            if self.watchdog.stdout is not None:
                self.watchdog.stdout.close()
        _unregister(self)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
                ) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return self.url(name)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


# Clusters this process owns, for the atexit hook and the signal handlers.
_LIVE: list[Cluster] = []
_HOOKED = False
_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def _on_signal(previous: _Handler) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        _stop_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # the default action: die of the signal, as before
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return handler


def _register(server: Cluster) -> None:
    global _HOOKED  # noqa: PLW0603 (install the hooks once per process)
    _LIVE.append(server)
    if _HOOKED:
        return
    _HOOKED = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _on_signal(signal.getsignal(signum)))


def _unregister(server: Cluster) -> None:
    with contextlib.suppress(ValueError):
        _LIVE.remove(server)


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    server = Cluster()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _watch(bindir: Path, base: Path, as_postgres: bool) -> None:
    """Wait for the owner to say ``done`` or to vanish (EOF); if it vanished, stop its cluster."""

    def clean_up(*_: object) -> None:
        stop_data_dir(bindir, base / "data", as_postgres)
        shutil.rmtree(base, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, clean_up)  # being terminated (a shutdown): take the cluster along
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "done":
        clean_up()


if __name__ == "__main__" and sys.argv[1:2] == ["watch"]:
    _watch(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "1")
