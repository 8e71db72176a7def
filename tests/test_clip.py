"""``--clip`` for real: Xvfb and xclip (``make clip-deps``), the installed entry point.

The clipboard is read back with xclip itself; the clearing process is found in /proc and
its argv and environment searched for the secret.
"""

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, CANARY_URI
from test_e2e import Shell

pytestmark = pytest.mark.e2e

CLIP_TIME = "2"


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private X server (Xvfb) for this module; its display number comes back on a pipe."""
    for tool in ("Xvfb", "xclip"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run 'make clip-deps' (apt-get install xvfb xclip)")
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0", "320x200x24"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def clipboard(display: str) -> str:
    result = subprocess.run(
        ["xclip", "-selection", "clipboard", "-out"],
        env={"DISPLAY": display, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.stdout if result.returncode == 0 else ""


def put(display: str, text: str) -> None:
    subprocess.run(
        ["xclip", "-selection", "clipboard", "-in"],
        input=text,
        env={"DISPLAY": display, "PATH": os.environ["PATH"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=10,
        check=True,
    )


def wait_for(condition: object, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.2)
    return False


def clearers() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"govern.clipboard" in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture
def shell(tmp_path: Path, display: str) -> Shell:
    sh = Shell(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path)
    sh.env.update({"DISPLAY": display, "GOVERN_CLIP_TIME": CLIP_TIME})
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice")
    sh.run("account", "add", "x-acme", "--platform", "x", "--handle", "@acme")
    sh.run("secret", "set", "x-acme", "--password-stdin", "--totp-uri", "@" + str(_uri_file(tmp_path)),
           stdin=CANARY_PASSWORD + "\n")  # fmt: skip
    return sh


def _uri_file(tmp_path: Path) -> Path:
    path = tmp_path / "uri.txt"
    path.write_text(CANARY_URI + "\n")
    return path


def test_clip_copies_then_clears_and_prints_nothing(shell: Shell, display: str) -> None:
    put(display, "before")
    shown = shell.run("secret", "show", "x-acme", "--clip")
    assert shown.stdout == ""
    assert CANARY_PASSWORD not in shown.stderr
    assert "cleared in 2 s" in shown.stderr
    assert clipboard(display) == CANARY_PASSWORD
    assert wait_for(lambda: clipboard(display) == ""), "cleared after GOVERN_CLIP_TIME"
    log = shell.json("audit", "log")
    assert [e["action"] for e in log].count("secret.revealed") == 1, "a clip is a reveal, audited"


def test_clip_leaves_something_copied_since(shell: Shell, display: str) -> None:
    shell.run("secret", "show", "x-acme", "--clip")
    assert clipboard(display) == CANARY_PASSWORD
    put(display, "copied by the person since")
    assert wait_for(lambda: not clearers())
    assert clipboard(display) == "copied by the person since"


def test_clip_clearer_holds_no_secret_in_argv_or_environment(shell: Shell, display: str) -> None:
    shell.run("secret", "show", "x-acme", "--clip", GOVERN_CLIP_TIME="30")
    pids = clearers()
    assert pids, "the clearing process is running"
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        for text in (cmdline, environ):
            assert CANARY_PASSWORD.encode() not in text
            assert b"correct horse" not in text, "nor the passphrase"
            assert b"GOVERN_PASSPHRASE" not in text
        os.kill(pid, 15)
    assert wait_for(lambda: not clearers())


def test_totp_clip(shell: Shell, display: str) -> None:
    result = shell.run("totp", "x-acme", "--clip")
    assert result.stdout == ""
    assert re.fullmatch(r"\d{6}", clipboard(display))
    assert wait_for(lambda: clipboard(display) == "")


def test_no_clipboard_is_exit_2_and_reveals_nothing(shell: Shell) -> None:
    before = len(shell.json("audit", "log"))
    result = shell.run("secret", "show", "x-acme", "--clip", code=2, DISPLAY="")
    assert result.stdout == ""
    assert "--clip needs a clipboard" in result.stderr
    assert CANARY_PASSWORD not in result.stderr
    assert len(shell.json("audit", "log")) == before, "nothing was revealed, nothing logged"
    assert shell.run("totp", "x-acme", "--clip", code=2, DISPLAY="").stdout == ""


def test_clip_time_is_checked(shell: Shell) -> None:
    result = shell.run("secret", "show", "x-acme", "--clip", code=2, GOVERN_CLIP_TIME="0")
    assert "GOVERN_CLIP_TIME" in result.stderr
    assert shell.run("secret", "show", "x-acme", "--clip", "--json", code=2).stdout == ""
