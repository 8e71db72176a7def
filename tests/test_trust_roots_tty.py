"""First use at a real terminal: the fingerprint is confirmed only by a person at ``/dev/tty``.

Through the installed entry point, with a pseudo-terminal as the controlling terminal and
standard input a pipe (which never answers the question).
"""

import json
from pathlib import Path

import pytest
from conftest import passphrase_of
from test_e2e import Shell
from test_prompt_tty import Terminal

pytestmark = pytest.mark.e2e


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    sh = Shell(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice")
    code = sh.json("staff", "add", "bob", "--name", "Bob")["enrolment_code"]
    sh.run("staff", "enroll", "bob", "--code", code, who="bob")
    sh.run("account", "add", "x-acme", "--platform", "x", "--handle", "@acme")
    sh.run("access", "grant", "x-acme", "bob", "--reason", "runs X")
    return sh


def _laptop(sh: Shell, tmp_path: Path) -> dict[str, str]:
    return {
        **sh.env,
        "GOVERN_USER": "alice",
        "GOVERN_PASSPHRASE": passphrase_of("alice"),
        "GOVERN_STATE_DIR": str(tmp_path / "new-laptop"),
    }


def test_yes_at_the_terminal_confirms_the_fingerprint(shell: Shell, tmp_path: Path) -> None:
    fingerprint = shell.json("pin", "show")["fingerprint"]
    # "y" on standard input (a pipe) is the new password, never the answer.
    term = Terminal(["secret", "set", "x-acme", "--password-stdin"], _laptop(shell, tmp_path), stdin="y\n")
    term.expect(f"Is {fingerprint} the fingerprint you were given? [y/N] ")
    term.type("y")
    code, _out, err = term.finish()
    assert code == 2, err  # then "y" is refused as a password: too short; nothing to do with trust
    shown = shell.json("pin", "show", GOVERN_STATE_DIR=str(tmp_path / "new-laptop"))
    assert shown["confirmed"] is False, "a refused command confirms nothing"
    term = Terminal(
        ["secret", "set", "x-acme", "--password-stdin"], _laptop(shell, tmp_path), stdin="a-brand-new-password-1\n"
    )
    term.expect("[y/N] ")
    term.type("y")
    code, _out, err = term.finish()
    assert code == 0, err
    shown = shell.json("pin", "show", GOVERN_STATE_DIR=str(tmp_path / "new-laptop"))
    assert (shown["confirmed"], shown["confirmed_by"]) == (True, "terminal")


def test_no_at_the_terminal_wraps_nothing_to_others(shell: Shell, tmp_path: Path) -> None:
    term = Terminal(
        ["secret", "set", "x-acme", "--password-stdin"], _laptop(shell, tmp_path), stdin="a-brand-new-password-1\n"
    )
    term.expect("[y/N] ")
    term.type("n")
    code, _out, err = term.finish()
    assert code == 4, err
    assert "pin trust --fingerprint" in err
    pin = json.loads(shell.run("pin", "show", "--json", GOVERN_STATE_DIR=str(tmp_path / "new-laptop")).stdout)
    assert pin["confirmed"] is False
