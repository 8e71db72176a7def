"""The unlock cache: the real keyring API with test backends, never the user's keyring."""

import keyring
import pytest
from conftest import CANARY_PASSWORD, Govern
from keyring.backends import fail, null
from memkeyring import MemoryKeyring, PlaintextKeyring

from govern.unlock import KEYRING_SERVICE, KeyringState, UnlockCache, keyring_backend


def test_unlock_is_cached_then_needs_no_passphrase(vault: Govern) -> None:
    MemoryKeyring.entries.clear()
    vault.ok("secret", "show", "x-acme")
    entries = [user for (service, user) in MemoryKeyring.entries if service == KEYRING_SERVICE]
    assert len(entries) == 1
    assert entries[0].startswith("unlock:")
    # The cached entry is a derived key and an expiry, never the passphrase itself.
    assert "correct horse" not in next(iter(MemoryKeyring.entries.values()))
    again = vault("secret", "show", "x-acme", passphrase=None)
    assert again.code == 0
    assert again.out.strip() == CANARY_PASSWORD


def test_cache_expires() -> None:
    cache = UnlockCache("vault-id", "fingerprint", lambda _m: None)
    cache.put(b"k" * 32, now=1000.0)
    assert cache.get(now=1000.0 + cache.ttl - 1) == b"k" * 32
    assert cache.get(now=1000.0 + cache.ttl) is None
    assert (KEYRING_SERVICE, "unlock:vault-id:fingerprint") not in MemoryKeyring.entries, "expired entries go"


def test_cache_ttl_zero_disables_caching(vault: Govern) -> None:
    MemoryKeyring.entries.clear()
    vault.ok("secret", "show", "x-acme", env={"GOVERN_CACHE_TTL": "0"})
    assert not MemoryKeyring.entries


def test_a_stale_cached_key_falls_back_to_the_passphrase(vault: Govern) -> None:
    vault.ok("whoami")
    vault.ok("secret", "show", "x-acme")
    for key in list(MemoryKeyring.entries):
        MemoryKeyring.entries[key] = '{"key": "' + "A" * 43 + '=", "expires": 99999999999}'
    assert vault("secret", "show", "x-acme", passphrase=None).code == 2  # no passphrase source left
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD


def _at_a_terminal(monkeypatch: pytest.MonkeyPatch, answer: str) -> list[str]:
    """A person at a terminal who answers every prompt with ``answer``; returns the prompts."""
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return answer

    monkeypatch.setattr("govern.unlock.terminal_available", lambda: True)
    monkeypatch.setattr("getpass.getpass", getpass)
    return prompts


def test_no_backend_asks_each_time_with_one_line(vault: Govern, monkeypatch: pytest.MonkeyPatch) -> None:
    keyring.set_keyring(fail.Keyring())
    # Nothing is asked (the passphrase comes from the environment, as in cron): nothing is said.
    assert "keyring" not in vault.ok("secret", "show", "x-acme").err
    assert vault("secret", "show", "x-acme", passphrase=None).code == 2
    prompts = _at_a_terminal(monkeypatch, "alice correct horse battery")
    result = vault.ok("secret", "show", "x-acme", passphrase=None)
    notes = [line for line in result.err.splitlines() if "keyring" in line]
    assert notes == ["govern: no OS keyring is available, so the passphrase will be asked each time"]
    assert prompts == ["Passphrase for alice: "]


@pytest.mark.parametrize("backend", [null.Keyring(), PlaintextKeyring()], ids=["null", "plaintext"])
def test_insecure_backends_are_refused_unless_allowed(
    vault: Govern, backend: keyring.backend.KeyringBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    MemoryKeyring.entries.clear()
    keyring.set_keyring(backend)
    assert keyring_backend()[2] is KeyringState.REFUSED
    assert "unprotected" not in vault.ok("secret", "show", "x-acme").err, "said only when a prompt follows"
    _at_a_terminal(monkeypatch, "alice correct horse battery")
    result = vault.ok("secret", "show", "x-acme", passphrase=None)
    assert "unprotected" in result.err
    assert not MemoryKeyring.entries
    allowed = vault.ok("secret", "show", "x-acme", passphrase=None, env={"GOVERN_ALLOW_INSECURE_KEYRING": "1"})
    assert "unprotected" not in allowed.err


def test_doctor_reports_the_keyring(vault: Govern) -> None:
    report = vault("doctor", "--json").json()
    assert report["keyring"]["backend"] == "memkeyring.MemoryKeyring"
    assert report["keyring"]["state"] == "usable"
    assert report["keyring"]["cache_ttl_seconds"] == 900
