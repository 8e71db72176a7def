"""Small things a user trips on (issue 11): --json everywhere, words not Python values,
whole dates at 80 columns, NO_COLOR without escapes, no half table before an error."""

import json
import os
import pty
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import Govern
from test_e2e import GOVERN, Shell

from govern.errors import IntegrityFailure

_PYTHON_VALUES = re.compile(r"\b(True|False|None)\b")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z)?")


def test_offboard_report_json(vault: Govern) -> None:
    vault.ok("offboard", "start", "bob", "--reason", "left")
    as_json = vault.ok("offboard", "report", "bob", "--json").json()
    assert as_json == vault.ok("offboard", "report", "bob", "--format", "json").json()
    assert "bob" in json.dumps(as_json)
    both = vault("offboard", "report", "bob", "--json", "--format", "md")
    assert both.code == 2
    assert vault.ok("offboard", "report", "bob").out.startswith("#"), "Markdown stays the default"


def test_audit_checkpoint_json(vault: Govern, tmp_path: Path) -> None:
    body = vault.ok("audit", "checkpoint", "--json").json()
    assert body["format"] == "govern-audit-checkpoint"
    out = tmp_path / "cp.json"
    record = vault.ok("audit", "checkpoint", "--out", str(out), "--json").json()
    written = json.loads(out.read_text())
    assert record == {"seq": written["seq"], "head": written["head"], "signer": "alice", "out": str(out)}


def test_no_python_values_in_human_output(vault: Govern, tmp_path: Path) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X", "--for", "2d")
    checkpoint = tmp_path / "cp.json"
    vault.ok("audit", "checkpoint", "--out", str(checkpoint))
    outputs = [
        vault.ok("staff", "show", "bob"),
        vault.ok("audit", "verify", "--checkpoint", str(checkpoint)),
        vault.ok("pin", "show"),
        vault.ok("whoami"),
        vault.ok("account", "show", "x-acme"),
        vault.ok("access", "list"),
        vault("doctor"),
    ]
    for result in outputs:
        assert not _PYTHON_VALUES.search(result.out), result.out
        assert not _PYTHON_VALUES.search(result.err), result.err
    assert "live=yes" in outputs[0].out


def test_no_half_table_before_an_error(vault: Govern, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row that fails half-way through a listing: nothing of the table is printed."""
    from govern.services import auditing

    real = auditing.event_view
    seen = []

    def failing(event: Any) -> dict[str, Any]:
        seen.append(event)
        if len(seen) == 4:
            raise IntegrityFailure("event 4 does not verify")
        return real(event)

    monkeypatch.setattr(auditing, "event_view", failing)
    for args in (("audit", "log"), ("audit", "log", "--json")):
        seen.clear()
        result = vault(*args)
        assert result.code == 6
        assert result.out == ""
        assert len(seen) == 4, "it failed half-way, after three good rows"


def _on_a_terminal(sh: Shell, *args: str, columns: int = 80, **env: str) -> str:
    environment = {**sh.env, "GOVERN_USER": "alice", "GOVERN_PASSPHRASE": "alice correct horse battery"}
    environment.update({"COLUMNS": str(columns), "LINES": "50", **env})
    pid, fd = pty.fork()
    if pid == 0:  # the child runs govern on the pseudo-terminal
        os.execve(str(GOVERN), [str(GOVERN), *args], environment)  # noqa: S606  (the installed entry point)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    return output.decode()


@pytest.fixture
def terminal_vault(tmp_path: Path) -> Shell:
    sh = Shell(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice")
    code = sh.json("staff", "add", "bob", "--name", "Bob")["enrolment_code"]
    sh.run("staff", "enroll", "bob", "--code", code, who="bob")
    sh.run("account", "add", "x-acme", "--platform", "x", "--handle", "@acme", "--rotate-every", "90d")
    sh.run("secret", "set", "x-acme", "--password-stdin", stdin="a password\n")
    sh.run("access", "grant", "x-acme", "bob", "--reason", "runs the account", "--for", "30d")
    return sh


@pytest.mark.e2e
@pytest.mark.parametrize(
    "command",
    [("access", "list"), ("audit", "log"), ("rotation", "status"), ("secret", "history", "x-acme")],
    ids=" ".join,
)
def test_dates_are_never_cut_at_80_columns(terminal_vault: Shell, command: tuple[str, ...]) -> None:
    text = _on_a_terminal(terminal_vault, *command, NO_COLOR="1")
    assert "…" not in text, text
    lines = text.replace("\r", "").splitlines()
    assert all(len(line) <= 80 for line in lines), text
    dates = [match.group() for line in lines for match in _TIMESTAMP.finditer(line)]
    assert dates, text
    # Every date shown is whole: at least the day, and nothing of it continues on the next line.
    assert all(len(date) >= 10 for date in dates)
    assert not re.search(r"\d{4}-\d{2}\s*$", text, re.MULTILINE)


@pytest.mark.e2e
def test_full_dates_when_they_fit(terminal_vault: Shell) -> None:
    text = _on_a_terminal(terminal_vault, "audit", "log", columns=160)
    assert re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", text)


@pytest.mark.e2e
def test_no_color_leaves_no_escape_at_all(terminal_vault: Shell) -> None:
    plain = _on_a_terminal(terminal_vault, "access", "list", NO_COLOR="1")
    assert "\x1b" not in plain
    assert "x-acme" in plain
    styled = _on_a_terminal(terminal_vault, "access", "list")
    assert "\x1b[1m" in styled, "without NO_COLOR the header is bold (the test can fail)"
