"""Shell completion through the installed entry point, driven by a real bash.

zsh and fish are not installed on the test machine: their scripts are checked as text
(no ``eval`` of what govern answers), the answering side is the same code as bash's.
"""

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from test_e2e import GOVERN, Shell

pytestmark = pytest.mark.e2e

HOSTILE_SLUGS = [
    "$(touch PWNED-1)",
    "`touch PWNED-2`",
    "a;touch PWNED-3",
    "x-ok\n$(touch PWNED-4)",
    "x-*",
    "x-acme2 --db=/tmp/elsewhere",
    "x-\x1b]0;title\x07",
]


def bash_complete(sh: Shell, words: list[str], cwd: Path, **env: str) -> tuple[list[str], str]:
    """Source ``govern completion bash`` in a real bash and complete ``words`` (the last is
    the word being typed); returns COMPREPLY and bash's stderr."""
    script = (
        'eval "$(govern completion bash)"\n'
        f"COMP_WORDS=({' '.join(_quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f"_govern_completion govern {_quote(words[-1])} {_quote(words[-2])}\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**sh.env, "PATH": f"{GOVERN.parent}{os.pathsep}{sh.env['PATH']}", **env},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line], result.stderr


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    sh = Shell(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice")
    sh.run("account", "add", "x-acme", "--platform", "x", "--handle", "@acme")
    sh.run("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme")
    sh.run("staff", "add", "bob", "--name", "Bob")
    return sh


def test_completion_prints_each_script(shell: Shell) -> None:
    for name in ("bash", "zsh", "fish"):
        script = shell.run("completion", name).stdout
        assert "_GOVERN_COMPLETE" in script
        code = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
        assert not any("eval" in line for line in code), "answers are never eval'd"
    assert "compdef" in shell.run("completion", "zsh").stdout
    assert "complete --command govern" in shell.run("completion", "fish").stdout
    bad = shell.run("completion", "tcsh", code=2)
    assert "bash, zsh or fish" in bad.stderr


def test_bash_completes_commands_accounts_and_handles(shell: Shell, tmp_path: Path) -> None:
    assert "secret" in bash_complete(shell, ["govern", "sec"], tmp_path)[0]
    assert bash_complete(shell, ["govern", "secret", "show", ""], tmp_path)[0] == ["ig-acme", "x-acme"]
    assert bash_complete(shell, ["govern", "totp", "x"], tmp_path)[0] == ["x-acme"]
    assert bash_complete(shell, ["govern", "access", "grant", "x-acme", "b"], tmp_path)[0] == ["bob"]
    assert bash_complete(shell, ["govern", "--as", ""], tmp_path)[0] == ["alice", "bob"]
    assert "--field" in bash_complete(shell, ["govern", "secret", "show", "x-acme", "--f"], tmp_path)[0]


def test_completion_reads_no_passphrase_and_writes_nothing(shell: Shell, tmp_path: Path) -> None:
    db = tmp_path / "vault.db"
    before = db.read_bytes()
    replies, err = bash_complete(shell, ["govern", "secret", "show", ""], tmp_path, GOVERN_PASSPHRASE="")
    assert replies == ["ig-acme", "x-acme"]
    assert err == ""
    assert db.read_bytes() == before
    log = shell.json("audit", "log")
    assert all(event["action"] != "secret.revealed" for event in log)


def test_attack_hostile_slugs_in_the_database_do_not_reach_the_shell(shell: Shell, tmp_path: Path) -> None:
    """A database writer names accounts and people with shell code: none of it runs or is offered."""
    db = tmp_path / "vault.db"
    with sqlite3.connect(db) as connection:
        columns = "platform, handle, max_holders, created_at, created_by"
        for slug in HOSTILE_SLUGS:
            connection.execute(
                f"INSERT INTO account (slug, {columns}) SELECT ?, {columns} FROM account WHERE slug = 'x-acme'",  # noqa: S608
                (slug,),
            )
        connection.execute("UPDATE person SET handle = '$(touch PWNED-5)' WHERE handle = 'bob'")
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "x-glob-target").write_text("a file a glob would find")
    replies, err = bash_complete(shell, ["govern", "secret", "show", "x"], work)
    assert replies == ["x-acme"], replies
    assert err == ""
    handles, _ = bash_complete(shell, ["govern", "--as", ""], work)
    assert handles == ["alice"]
    assert not list(work.glob("PWNED*"))
    assert not list(tmp_path.glob("PWNED*"))
    assert not list(Path.cwd().glob("PWNED*"))


def test_completion_never_fails_loudly(shell: Shell, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vault.db"
    replies, err = bash_complete(shell, ["govern", "secret", "show", ""], tmp_path, GOVERN_DB_URL=str(missing))
    assert replies == []
    assert err == ""
    assert not missing.parent.exists(), "completion never creates a vault"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    assert bash_complete(shell, ["govern", "totp", ""], tmp_path, GOVERN_DB_URL=str(garbage)) == ([], "")
    started = time.monotonic()
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:9/none"
    assert bash_complete(shell, ["govern", "totp", ""], tmp_path, GOVERN_DB_URL=unreachable) == ([], "")
    assert time.monotonic() - started < 20


def test_version_flag(shell: Shell) -> None:
    version = shell.run("version").stdout
    assert shell.run("--version").stdout == version
    assert version.startswith("govern ")
    direct = subprocess.run([str(GOVERN), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert direct.returncode == 0
    assert direct.stdout == version
