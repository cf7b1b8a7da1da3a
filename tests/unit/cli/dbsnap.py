"""Every row of every table of a control-plane database, to show that a refused call changed nothing."""

from __future__ import annotations

from sqlalchemy import MetaData

from pressluft_lib.storage import db

_META: list[MetaData] = []


def db_snapshot(url: str) -> dict[str, list[str]]:
    engine = db.make_engine(url)
    try:
        if not _META:  # every control-plane database of a test run has the same schema: reflect once
            meta = MetaData()
            meta.reflect(engine)
            _META.append(meta)
        meta = _META[0]
        with engine.connect() as conn:
            return {t: sorted(map(repr, conn.execute(meta.tables[t].select()).all())) for t in meta.tables}
    finally:
        engine.dispose()
