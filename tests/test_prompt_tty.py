"""The passphrase prompt on a real terminal, through the installed entry point.

Each run gets a pseudo-terminal as its controlling terminal (a new session, TIOCSCTTY)
while standard input is a pipe, as for ``printf '%s\\n' "$PW" | govern secret set …
--password-stdin`` typed by a person: the prompt must read the terminal (/dev/tty).
"""

import fcntl
import os
import select
import subprocess
import termios
import time
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, passphrase_of
from test_e2e import GOVERN, Shell

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "CANARY-piped-pw-41d2-do-not-leak"


class Terminal:
    """``govern`` with a pty as controlling terminal and pipes for stdin, stdout, stderr."""

    def __init__(self, args: list[str], env: dict[str, str], stdin: str = "") -> None:
        self.master, slave = os.openpty()

        def take_terminal() -> None:  # in the child, before exec
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [str(GOVERN), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(slave,),
            preexec_fn=take_terminal,  # noqa: PLW1509  (the only way to give a child a controlling tty)
        )
        os.close(slave)
        assert self.proc.stdin is not None
        self.proc.stdin.write(stdin.encode())
        self.proc.stdin.close()
        self.proc.stdin = None  # given whole and closed: communicate() only collects the output
        self.screen = b""

    def expect(self, text: str, timeout: float = 60) -> None:
        """Read the terminal until ``text`` appears on it."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"{text!r} never appeared on the terminal; saw {self.screen!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    self._fail(f"the terminal closed before {text!r}; saw {self.screen!r}")
                self.screen += chunk

    def _fail(self, message: str) -> None:
        self.proc.kill()
        _out, err = self.proc.communicate(timeout=60)
        os.close(self.master)
        pytest.fail(f"{message}; stderr: {err.decode(errors='replace')}")

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=120)
        # Whatever else reached the terminal after the last prompt.
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.screen += chunk
        os.close(self.master)
        return self.proc.returncode, out.decode(), err.decode()


def _env(sh: Shell, **extra: str) -> dict[str, str]:
    return {**sh.env, "GOVERN_USER": "alice", **extra}


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    sh = Shell(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice")
    sh.run("account", "add", "x-acme", "--platform", "x", "--handle", "@acme")
    sh.run("secret", "set", "x-acme", "--password-stdin", stdin=CANARY_PASSWORD + "\n")
    return sh


def test_piped_password_with_a_person_at_the_terminal(shell: Shell) -> None:
    """stdin carries the password; the passphrase is asked on /dev/tty, hidden."""
    term = Terminal(
        ["secret", "set", "x-acme", "--password-stdin"],
        _env(shell, GOVERN_CACHE_TTL="0"),
        stdin=NEW_PASSWORD + "\n",
    )
    term.expect("Passphrase for alice: ")
    term.type(passphrase_of("alice"))
    code, out, err = term.finish()
    assert code == 0, err
    assert "version 2" in err
    assert passphrase_of("alice").encode() not in term.screen, "the prompt does not echo"
    shown = shell.run("secret", "show", "x-acme").stdout.strip()
    assert shown == NEW_PASSWORD
    for text in (out, err, term.screen.decode(errors="replace")):
        assert NEW_PASSWORD not in text


def test_wrong_passphrase_at_the_terminal_is_exit_5(shell: Shell) -> None:
    term = Terminal(["secret", "show", "x-acme"], _env(shell, GOVERN_CACHE_TTL="0"))
    term.expect("Passphrase for alice: ")
    term.type("not the passphrase at all")
    code, _out, err = term.finish()
    assert code == 5
    assert "wrong passphrase" in err


def test_no_terminal_at_all_is_a_clear_exit_2(shell: Shell) -> None:
    """No controlling terminal, stdin a pipe, no passphrase source: 2, one line, no warning."""
    result = subprocess.run(
        [str(GOVERN), "secret", "set", "x-acme", "--password-stdin"],
        input=NEW_PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=_env(shell, GOVERN_CACHE_TTL="0"),
        start_new_session=True,  # no controlling terminal
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "govern: error: a passphrase is needed and there is no terminal to ask it at: use --passphrase-stdin,"
        " GOVERN_PASSPHRASE_FILE or GOVERN_PASSPHRASE"
    ]
    assert "Warning" not in result.stderr
    assert NEW_PASSWORD not in result.stderr + result.stdout


def test_keyring_notice_only_before_a_prompt_and_once(shell: Shell) -> None:
    no_keyring = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    # A cron run with its passphrase from the environment is told nothing.
    quiet = shell.run("secret", "show", "x-acme", **no_keyring)
    assert "keyring" not in quiet.stderr
    quiet_file = shell.run("rotation", "status", **no_keyring)
    assert quiet_file.stderr == ""
    # A person at the terminal is told once, just before the prompt.
    term = Terminal(["secret", "show", "x-acme"], _env(shell, **no_keyring))
    term.expect("Passphrase for alice: ")
    term.type(passphrase_of("alice"))
    code, out, err = term.finish()
    assert code == 0, err
    assert out.strip() == CANARY_PASSWORD
    notes = [line for line in err.splitlines() if "keyring" in line]
    assert notes == ["govern: no OS keyring is available, so the passphrase will be asked each time"]
