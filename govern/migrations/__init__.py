"""Alembic migrations of the vault schema.

``REVISIONS`` lists every revision in order; the last is the one this code
needs. A test checks it against Alembic's own script directory.
"""

REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004")
HEAD_REVISION = REVISIONS[-1]
