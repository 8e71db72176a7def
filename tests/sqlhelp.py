"""Raw SQL against a test vault: how the tamper tests play the attacker with database access."""

from sqlalchemy import create_engine, text


def sql(db_url: str, statement: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def count(db_url: str, table: str) -> int:
    value = sql(db_url, f"SELECT COUNT(*) FROM {table}")[0][0]  # noqa: S608  (test helper; table names are literals)
    assert isinstance(value, int)
    return value
