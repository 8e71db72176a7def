"""The schema is Alembic's: migrations match the models, and old schemas are refused."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import Govern
from sqlalchemy import create_engine
from sqlhelp import sql
from sqlmodel import SQLModel

import govern.models  # noqa: F401  (registers the tables)
from govern import db as govern_db
from govern.migrations import HEAD_REVISION, REVISIONS
from govern.migrations.runner import script_heads


def test_code_knows_alembics_head() -> None:
    assert script_heads() == [HEAD_REVISION]
    assert REVISIONS[-1] == HEAD_REVISION


def test_migrated_schema_matches_the_models(govern: Govern) -> None:
    govern.init()
    engine = create_engine(govern.db)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_an_older_schema_says_run_db_upgrade(govern: Govern, monkeypatch: pytest.MonkeyPatch) -> None:
    govern.init()
    # Pretend this govern ships a newer revision than the vault has.
    monkeypatch.setattr(govern_db, "REVISIONS", (*REVISIONS, "9999"))
    monkeypatch.setattr(govern_db, "HEAD_REVISION", "9999")
    result = govern("whoami")
    assert result.code == 8
    assert "govern db upgrade" in result.err


def test_a_newer_schema_says_upgrade_govern(govern: Govern) -> None:
    govern.init()
    sql(govern.db, "UPDATE alembic_version SET version_num = 'zzzz'")
    result = govern("whoami")
    assert result.code == 8
    assert "newer" in result.err


def test_db_upgrade_is_idempotent(govern: Govern) -> None:
    govern.init()
    result = govern.ok("db", "upgrade")
    assert "up to date" in result.err
    assert govern.ok("whoami", "--json").json()["handle"] == "alice"


def test_db_upgrade_without_a_vault(govern: Govern) -> None:
    result = govern("db", "upgrade")
    assert result.code == 3
    assert "govern init" in result.err


def test_upgrade_from_the_first_revision_keeps_the_data(govern: Govern) -> None:
    """A vault made by 0.1.0 (revision 0001) is refused until 'db upgrade', then works as before."""
    from alembic import command

    from govern.migrations.runner import alembic_config

    govern.init()
    govern.enrol("bob")
    govern.account()
    govern.ok("access", "grant", "x-acme", "bob", "--reason", "before")
    govern.ok("access", "revoke", "x-acme", "bob", "--reason", "left")  # an exposure row to carry across
    engine = create_engine(govern.db)
    try:
        config = alembic_config()
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
            connection.commit()
    finally:
        engine.dispose()
    refused = govern("whoami")
    assert refused.code == 8
    assert "govern db upgrade" in refused.err
    assert HEAD_REVISION in govern.ok("db", "upgrade").err
    history = govern.ok("secret", "history", "x-acme", "--json").json()
    assert history[-1]["exposures"] == [{"handle": "bob", "kind": "password"}]
    state = govern.ok("rotation", "status", "--json").json()[0]
    assert state["state"] == "exposed"
    govern.ok("access", "grant", "x-acme", "bob", "--reason", "after upgrade")
    assert govern.ok("secret", "show", "x-acme", as_="bob").out.strip().startswith("CANARY")
