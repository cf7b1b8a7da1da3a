"""Every row of every table of a control-plane database, to show that a refused call changed nothing."""

from __future__ import annotations

from sqlalchemy import MetaData

from pressluft_lib.storage import db


def db_snapshot(url: str) -> dict[str, list[str]]:
    engine = db.make_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {t: sorted(map(repr, conn.execute(meta.tables[t].select()).all())) for t in meta.tables}
    finally:
        engine.dispose()
