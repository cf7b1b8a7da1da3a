"""Alembic environment: programmatic config (db.alembic_config); engines come from db.make_engine."""

from alembic import context
from sqlalchemy import text

from pressluft_lib.storage.db import make_engine
from pressluft_lib.storage.models import Base

config = context.config
target_metadata = Base.metadata
# Workers and `db upgrade` may start together: on PostgreSQL one migrates while the others wait on this
# transaction-scoped lock, then find the schema current (SQLite: a lock file, db.upgrade).
MIGRATION_LOCK = 0x50524553534C  # "PRESSL"


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            # render_as_batch lets ALTERs work on SQLite in later migrations.
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
