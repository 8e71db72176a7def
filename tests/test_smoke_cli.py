"""The main flows through the CLI on both backends, with exit codes and output."""

from conftest import CANARY_PASSWORD, CANARY_URI, Govern


def test_init_whoami_and_version(govern: Govern) -> None:
    created = govern.ok("init", "--org", "Acme", "--admin", "alice", "--name", "Alice Admin", "--json").json()
    assert created["admin"] == "alice"
    assert created["recovery_key"].startswith("GOVERN-RECOVERY-1-")
    me = govern.ok("whoami", "--json").json()
    assert me["role"] == "admin"
    assert me["key_fingerprint"] == created["key_fingerprint"]
    assert me["fingerprint"] == created["fingerprint"], "the vault fingerprint"
    assert govern.ok("version").out.startswith("govern ")


def test_grant_reveal_revoke(vault: Govern) -> None:
    denied = vault("secret", "show", "x-acme", as_="bob")
    assert denied.code == 4
    assert "no live grant" in denied.err
    grant = vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X", "--for", "30d", "--json").json()
    assert grant["status"] == "live"
    assert grant["until"] is not None
    assert vault.ok("secret", "show", "x-acme", as_="bob").out == CANARY_PASSWORD + "\n"
    assert vault.ok("secret", "show", "x-acme", "--field", "username", as_="bob").out == "acme-social\n"
    revoked = vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team", "--json").json()
    assert revoked["exposed_versions"] == [1]
    assert vault("secret", "show", "x-acme", as_="bob").code == 4
    history = vault.ok("secret", "history", "x-acme", "--json").json()
    assert history[-1]["exposed_to"] == 1


def test_totp_code(vault: Govern) -> None:
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    result = vault.ok("totp", "x-acme", "--json")
    code = result.json()
    assert len(code["code"]) == 6
    assert code["code"].isdigit()
    assert 1 <= code["seconds_left"] <= 30
    plain = vault.ok("totp", "x-acme")
    assert "more second" in plain.err
    # Password and username were carried over to the new version.
    assert vault.ok("secret", "show", "x-acme").out == CANARY_PASSWORD + "\n"


def test_audit_log_records_everything(vault: Govern) -> None:
    vault.ok("secret", "show", "x-acme")
    events = vault.ok("audit", "log", "--json").json()
    actions = [e["action"] for e in events]
    assert actions[:3] == ["vault.initialised", "staff.added", "staff.enrolled"]
    assert "secret.set" in actions
    assert actions[-1] == "secret.revealed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    only_account = vault.ok("audit", "log", "--account", "x-acme", "--json").json()
    assert {e["account"] for e in only_account} == {"x-acme"}
