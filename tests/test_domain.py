"""Domain rules: custody of data keys, roles, accounts and the register of grants."""

import pytest
from conftest import CANARY_PASSWORD, Govern, passphrase_of
from sqlalchemy import create_engine
from sqlhelp import sql
from sqlmodel import Session, select

from govern.custody import wrap_aad
from govern.models import Account, DataKey, KeyWrap, Person, PersonKey, VaultMeta
from vault import IntegrityError, SealedKeyBlob, unwrap_key


def keys_of(db_url: str, handle: str):  # type: ignore[no-untyped-def]
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            person = session.exec(select(Person).where(Person.handle == handle)).one()
            row = session.exec(select(PersonKey).where(PersonKey.person_id == person.id)).one()
            blob = SealedKeyBlob.parse(row.sealed_private)
            return blob.open(blob.derive_kek(passphrase_of(handle)))
    finally:
        engine.dispose()


def current_wraps(db_url: str, slug: str) -> tuple[str, int, int, list[KeyWrap]]:
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            meta = session.exec(select(VaultMeta)).one()
            account = session.exec(select(Account).where(Account.slug == slug)).one()
            key = session.exec(
                select(DataKey).where(DataKey.account_id == account.id, DataKey.retired_at == None)  # noqa: E711
            ).one()
            wraps = list(session.exec(select(KeyWrap).where(KeyWrap.data_key_id == key.id)).all())
            assert account.id is not None
            assert key.id is not None
            return meta.id, account.id, key.id, wraps
    finally:
        engine.dispose()


def test_after_revoke_and_new_secret_the_old_holder_cannot_unwrap(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault_id, account_id, key_id, wraps = current_wraps(vault.db, "x-acme")
    bob = keys_of(vault.db, "bob")
    mine = [w for w in wraps if w.recipient_fingerprint == bob.public.fingerprint]
    assert len(mine) == 1
    assert (
        len(unwrap_key(mine[0].blob, bob.x25519, wrap_aad(vault_id, account_id, key_id, bob.public.fingerprint))) == 32
    )
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left")
    vault.ok("secret", "set", "x-acme", "--password-stdin", input="rotated-password-456\n")
    vault_id, account_id, new_key_id, wraps = current_wraps(vault.db, "x-acme")
    assert new_key_id != key_id
    assert bob.public.fingerprint not in {w.recipient_fingerprint for w in wraps}
    for wrap in wraps:  # not even by trying every wrap of the new key
        with pytest.raises(IntegrityError):
            unwrap_key(wrap.blob, bob.x25519, wrap_aad(vault_id, account_id, new_key_id, wrap.recipient_fingerprint))
    # The rotation cleared the exposure bob caused.
    assert vault.ok("secret", "history", "x-acme", "--json").json()[-1]["exposed_to"] == 0


def test_new_data_key_goes_to_recovery_admins_and_live_holders_only(vault: Govern) -> None:
    vault.enrol("carol")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("secret", "set", "x-acme", "--password-stdin", input="another-one-789\n")
    _, _, _, wraps = current_wraps(vault.db, "x-acme")
    people = {w.person_id for w in wraps}
    handles = {
        row[0] for row in sql(vault.db, "SELECT handle FROM person WHERE id IN (SELECT person_id FROM key_wrap)")
    }
    assert None in people, "the recovery key holds a wrap"
    assert {"alice", "bob"} <= handles
    carol = keys_of(vault.db, "carol")
    assert carol.public.fingerprint not in {w.recipient_fingerprint for w in wraps}
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == "another-one-789"


def test_a_promoted_admin_gets_custodian_wraps_and_a_demoted_one_loses_them(vault: Govern) -> None:
    vault.enrol("dan")
    assert vault("secret", "show", "x-acme", as_="dan").code == 4
    vault.ok("staff", "set-role", "dan", "admin")
    assert vault.ok("secret", "show", "x-acme", as_="dan").out.strip() == CANARY_PASSWORD
    vault.ok("staff", "set-role", "dan", "manager")
    assert vault("secret", "show", "x-acme", as_="dan").code == 4
    history = vault.ok("secret", "history", "x-acme", "--json").json()
    assert history[-1]["exposed_to"] == 1, "a demoted admin saw the password: it is exposed"


def test_the_last_admin_cannot_be_demoted(vault: Govern) -> None:
    result = vault("staff", "set-role", "alice", "member")
    assert result.code == 4
    assert "last active admin" in result.err


def test_an_auditor_with_grants_cannot_be_made(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    assert vault("staff", "set-role", "bob", "auditor").code == 4
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "now audits")
    vault.ok("staff", "set-role", "bob", "auditor")
    assert vault("access", "grant", "x-acme", "bob", "--reason", "x").code == 4


def test_granting_twice_or_to_an_admin_is_a_conflict(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    assert vault("access", "grant", "x-acme", "bob", "--reason", "again").code == 8
    assert vault("access", "grant", "x-acme", "alice", "--reason", "me").code == 8


@pytest.mark.tampers
def test_a_grant_end_moved_by_sql_is_refused_not_obeyed(vault: Govern) -> None:
    """Ending (or extending) a grant is a signed event; an edited end date is state the log does not explain."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X", "--for", "1h")
    assert vault("secret", "show", "x-acme", as_="bob").code == 0
    sql(vault.db, "UPDATE access_grant SET ends_at = starts_at")
    refused = vault("secret", "show", "x-acme", as_="bob")
    assert refused.code == 6, refused.err
    assert "grant 1" in refused.err
    assert CANARY_PASSWORD not in refused.out


def test_account_set_changes_and_audits(vault: Govern) -> None:
    vault.ok("account", "set", "x-acme", "--owner", "bob", "--max-holders", "5", "--rotate-every", "2w")
    shown = vault.ok("account", "show", "x-acme", "--json").json()
    assert (shown["owner"], shown["max_holders"], shown["rotate_every"]) == ("bob", 5, "2w")
    assert vault("account", "set", "x-acme", "--owner", "bob").code == 8
    assert vault("account", "set", "x-acme").code == 2
    events = vault.ok("audit", "log", "--action", "account.updated", "--json").json()
    assert events[-1]["data"]["changes"]["owner"] == [None, "bob"]


def test_lists_and_shows(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    staff = vault.ok("staff", "list", "--json").json()
    assert [p["handle"] for p in staff] == ["alice", "bob"]
    bob = vault.ok("staff", "show", "bob", "--json").json()
    assert bob["grants"][0]["account"] == "x-acme"
    accounts = vault.ok("account", "list", "--json").json()
    assert accounts[0]["holders"] == 1
    by_staff = vault.ok("access", "list", "--staff", "bob", "--json").json()
    assert [g["account"] for g in by_staff] == ["x-acme"]
    plain = vault.ok("access", "list").out.splitlines()
    assert plain[0].split("\t")[:3] == ["id", "account", "handle"]
