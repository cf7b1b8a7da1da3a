"""The queue's SQL lives in storage/sql, one file of named statements per dialect."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pressluft_lib.states import NODE_MUTATING, RESOURCE_MUTATING, settle_map
from pressluft_lib.storage import sql

LIB = Path(sql.__file__).resolve().parents[2]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_every_statement_loads_in_its_dialects_syntax(dialect):
    statements = sql.statements(dialect)
    assert {"claim", "heartbeat", "finish", "settle_sites", "settle_environments", "settle_nodes"} <= set(
        statements
    )
    for name, text in statements.items():
        assert text and "--" not in text, name
        if dialect == "postgresql":
            assert not re.search(r"(?<![:\w]):\w", text), f"{name}: SQLite-style parameter in PostgreSQL"
        else:
            assert "%(" not in text, f"{name}: psycopg-style parameter in SQLite"
            sql.sqlite(name)  # compiles as a typed text() clause


def test_no_queue_sql_outside_storage_sql():
    """Job events, settling and the hot path are written once, in the .sql files, not in Python."""
    offenders = []
    for path in LIB.rglob("*.py"):
        source = path.read_text()
        for pattern in (r"INSERT INTO job_events", r"insert\(JobEvent\)", r"JobEvent\.__table__\.insert",
                        r"UPDATE (jobs|sites|environments|nodes) SET"):  # fmt: skip
            if re.search(pattern, source):
                offenders.append(f"{path.relative_to(LIB)}: {pattern}")
    assert offenders == []


def test_the_settle_rule_covers_every_mutating_state():
    mutating = {str(s) for s in (*RESOURCE_MUTATING, *NODE_MUTATING)}
    for rule in (settle_map(True), settle_map(False), settle_map(False, untouched=True)):
        assert set(rule) == mutating
    assert settle_map(True)["deleting"] == "deleted" and set(settle_map(False).values()) == {"failed"}
    assert settle_map(False, untouched=True)["deploying"] == "active"
