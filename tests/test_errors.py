"""User errors: one line on stderr, the documented exit code, nothing written."""

from datetime import timedelta

import pytest
from conftest import CANARY_PASSWORD, CANARY_URI, Govern
from memkeyring import MemoryKeyring
from sqlhelp import count


def assert_one_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("govern: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err


def test_wrong_passphrase_is_5_and_writes_nothing(vault: Govern) -> None:
    MemoryKeyring.entries.clear()  # no cached unlock: the passphrase must be checked
    before = count(vault.db, "audit_event")
    result = vault("staff", "add", "dave", "--name", "Dave", passphrase="not the right passphrase")
    assert result.code == 5
    assert "wrong passphrase" in result.err
    assert_one_line(result.err)
    assert count(vault.db, "audit_event") == before
    assert count(vault.db, "person") == 2
    reveal = vault("secret", "show", "x-acme", passphrase="not the right passphrase")
    assert reveal.code == 5
    assert reveal.out == ""
    assert count(vault.db, "audit_event") == before


def test_unknown_and_unenrolled_actors_are_5(vault: Govern) -> None:
    assert vault("whoami", as_="nobody").code == 5
    vault.ok("staff", "add", "erin", "--name", "Erin")
    result = vault("secret", "show", "x-acme", as_="erin")
    assert result.code == 5
    assert "not enrolled" in result.err


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["secret", "show", "nope"], 3),
        (["account", "show", "nope"], 3),
        (["staff", "show", "nobody"], 3),
        (["access", "grant", "x-acme", "nobody", "--reason", "r"], 3),
        (["access", "revoke", "x-acme", "bob", "--reason", "r"], 3),
        (["account", "add", "x-acme", "--platform", "x", "--handle", "@dup"], 8),
        (["staff", "add", "bob", "--name", "Bob again"], 8),
        (["access", "grant", "x-acme", "bob", "--reason", "r", "--for", "3 days"], 2),
        (["access", "grant", "x-acme", "bob", "--reason", "r", "--for", "0d"], 2),
        (["audit", "log", "--since", "yesterday"], 2),
        (["staff", "add", "Bad Handle", "--name", "X"], 2),
        (["account", "add", "X_ACME", "--platform", "x", "--handle", "@a"], 2),
        (["account", "add", "new-one", "--platform", "myspace", "--handle", "@a"], 2),
        (["account", "add", "new-two", "--platform", "x", "--handle", "@a", "--max-holders", "0"], 2),
        (["staff", "set-role", "bob", "overlord"], 2),
        (["secret", "show", "x-acme", "--field", "pin"], 2),
        (["staff", "add", "fred", "--name", "Fred", "--email", "not-an-email"], 2),
        (["access", "grant", "x-acme", "bob", "--reason", "   "], 2),
        (["no-such-command"], 2),
        (["staff", "add", "gina"], 2),
        (["secret", "set", "x-acme"], 2),
    ],
)
def test_exit_codes(vault: Govern, args: list[str], code: int) -> None:
    before = count(vault.db, "audit_event")
    result = vault(*args)
    assert result.code == code, result.err
    assert_one_line(result.err)
    assert count(vault.db, "audit_event") == before


def test_roles_are_enforced(vault: Govern) -> None:
    for args in (
        ["staff", "add", "x1", "--name", "X"],
        ["account", "add", "y-acme", "--platform", "x", "--handle", "@y"],
        ["access", "grant", "x-acme", "bob", "--reason", "self-service"],
        ["staff", "set-role", "bob", "admin"],
    ):
        result = vault(*args, as_="bob")
        assert result.code == 4, args
        assert_one_line(result.err)


def test_totp_seed_on_the_command_line_is_refused(vault: Govern) -> None:
    result = vault("secret", "set", "x-acme", "--totp-uri", CANARY_URI)
    assert result.code == 2
    assert "command line" in result.err
    assert "JBSWY3DP" not in result.err
    history = vault.ok("secret", "history", "x-acme", "--json").json()
    assert "totp-uri" not in history[-1]["fields"]


def test_bad_totp_uri_never_echoes_the_seed(vault: Govern) -> None:
    result = vault("secret", "set", "x-acme", "--totp-uri", "-", input="otpauth://hotp/X?secret=SEEDSEEDSEED\n")
    assert result.code == 2
    assert "SEEDSEED" not in result.err


def test_enrolment_code_is_single_use_and_expires(vault: Govern) -> None:
    code = vault.ok("staff", "add", "hal", "--name", "Hal", "--json").json()["enrolment_code"]
    assert vault("staff", "enroll", "hal", "--code", "AAAA-BBBB", as_="hal").code == 5
    vault.ok("staff", "enroll", "hal", "--code", code, as_="hal")
    assert vault("staff", "enroll", "hal", "--code", code, as_="hal").code == 5
    stale = vault.ok("staff", "add", "ivy", "--name", "Ivy", "--json").json()["enrolment_code"]
    vault.later(timedelta(hours=73))
    expired = vault("staff", "enroll", "ivy", "--code", stale, as_="ivy")
    assert expired.code == 5
    assert "expired" in expired.err
    fresh = vault.ok("staff", "invite", "ivy", "--json").json()["enrolment_code"]
    vault.ok("staff", "enroll", "ivy", "--code", fresh, as_="ivy")
    assert vault.ok("whoami", "--json", as_="ivy").json()["status"] == "active"


def test_enrolment_rejects_a_weak_passphrase(vault: Govern) -> None:
    code = vault.ok("staff", "add", "jo", "--name", "Jo", "--json").json()["enrolment_code"]
    result = vault("staff", "enroll", "jo", "--code", code, as_="jo", passphrase="short")
    assert result.code == 2
    assert "12 characters" in result.err
    # The code was not consumed by the failed attempt.
    vault.ok("staff", "enroll", "jo", "--code", code, as_="jo")


def test_init_twice_is_a_conflict(vault: Govern) -> None:
    result = vault("init", "--org", "Other", "--admin", "zed", "--name", "Zed")
    assert result.code == 8
    assert count(vault.db, "person") == 2


def test_no_vault_is_not_found(govern: Govern) -> None:
    result = govern("whoami")
    assert result.code == 3
    assert "govern init" in result.err


def test_stdin_can_feed_only_one_secret(vault: Govern) -> None:
    MemoryKeyring.entries.clear()
    result = vault(
        "--passphrase-stdin",
        "secret",
        "set",
        "x-acme",
        "--password-stdin",
        input="alice correct horse battery\nnew-password\n",
    )
    assert result.code == 2
    assert "standard input" in result.err
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD


def test_passphrase_from_stdin_and_file(vault: Govern, tmp_path: object) -> None:
    MemoryKeyring.entries.clear()
    ok = vault("--passphrase-stdin", "whoami", passphrase=None, input="alice correct horse battery\n")
    assert ok.code == 0
    shown = vault(
        "--passphrase-stdin", "secret", "show", "x-acme", passphrase=None, input="alice correct horse battery\n"
    )
    assert shown.out.strip() == CANARY_PASSWORD
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    secret_file = tmp_path / "pp"
    secret_file.write_text("alice correct horse battery\n")
    from_file = vault("secret", "show", "x-acme", passphrase=None, env={"GOVERN_PASSPHRASE_FILE": str(secret_file)})
    assert from_file.out.strip() == CANARY_PASSWORD
    MemoryKeyring.entries.clear()
    none = vault("secret", "show", "x-acme", passphrase=None)
    assert none.code == 2
    assert "passphrase is needed" in none.err


def test_a_number_too_large_for_the_database_is_a_usage_error(vault: Govern) -> None:
    """Found by the full fuzz run: ids and versions beyond 64 bits gave exit 1 (OverflowError)."""
    huge = "9" * 50
    for args in (("access", "deny", huge, "--reason", "no"), ("secret", "show", "x-acme", "--version", huge)):
        result = vault(*args)
        assert result.code == 2, result.err
        assert "out of range" in result.err
        assert "Traceback" not in result.err
