"""Where one task's output waits for the next task: tables in Postgres, not files on a worker.

Celery workers run on any node and share no filesystem, so the candles (bronze) and the feature table (silver, the
Feast offline store's source) live in the ``feast`` database, reached with the ``FEAST_DB_*`` settings the workers
already have for Feast's SQL registry. Each write replaces its rows in one transaction: a reader (the next task, Feast's
materialization, training) sees the old rows or the new ones, never half of a write.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

import pandas as pd
import sqlalchemy as sa

from .candles import CANDLE_COLUMNS, PRICE_COLUMNS, validate_candles
from .feature_defs import CANDLES_TABLE, FEATURES_TABLE
from .features import FLOAT_FEATURES, INT_FEATURES, TARGET

log = logging.getLogger(__name__)

DB_ENV = ("FEAST_DB_HOST", "FEAST_DB_PORT", "FEAST_DB_USER", "FEAST_DB_PASSWORD", "FEAST_DB_NAME")

_meta = sa.MetaData()
candles_table = sa.Table(
    CANDLES_TABLE,
    _meta,
    sa.Column("instrument", sa.Text, primary_key=True),
    sa.Column("time", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("volume", sa.BigInteger, nullable=False),
    *[sa.Column(c, sa.Float(53), nullable=False) for c in PRICE_COLUMNS],
)
features_table = sa.Table(
    FEATURES_TABLE,
    _meta,
    sa.Column("instrument", sa.Text, primary_key=True),
    sa.Column("event_timestamp", sa.DateTime(timezone=True), primary_key=True),
    *[sa.Column(c, sa.Float(53), nullable=False) for c in FLOAT_FEATURES],
    *[sa.Column(c, sa.BigInteger, nullable=False) for c in INT_FEATURES],
    sa.Column(TARGET, sa.Float(53), nullable=True),  # NaN -> NULL on each instrument's newest row (no label yet)
)


def database_url() -> sa.engine.URL:
    """The ``feast`` database as the workers' environment names it (FEAST_DB_*; the password from its Secret)."""
    missing = [k for k in DB_ENV if k != "FEAST_DB_PORT" and not os.environ.get(k)]
    if missing:
        raise RuntimeError(f"the pipeline's data store needs env {missing} (the feast database, docs/contracts.md)")
    return sa.engine.URL.create(
        "postgresql+psycopg",
        username=os.environ["FEAST_DB_USER"],
        password=os.environ["FEAST_DB_PASSWORD"],
        host=os.environ["FEAST_DB_HOST"],
        port=int(os.environ.get("FEAST_DB_PORT") or 5432),
        database=os.environ["FEAST_DB_NAME"],
    )


@lru_cache(maxsize=4)
def _engine_for(url: sa.engine.URL) -> sa.Engine:
    engine = sa.create_engine(url, pool_pre_ping=True)
    _meta.create_all(engine)  # CREATE TABLE IF NOT EXISTS: the first task on a fresh database makes them
    return engine


def engine() -> sa.Engine:
    return _engine_for(database_url())


def read_candles(instrument: str | None = None, eng: sa.Engine | None = None) -> pd.DataFrame:
    """Stored candles (one instrument, or all), sorted by instrument and time; empty frame when none."""
    q = sa.select(candles_table)
    if instrument is not None:
        q = q.where(candles_table.c.instrument == instrument)
    with (eng or engine()).connect() as c:
        df = pd.read_sql(q.order_by(candles_table.c.instrument, candles_table.c.time), c)
    if df.empty:
        return pd.DataFrame(columns=CANDLE_COLUMNS)
    return validate_candles(df)


def replace_candles(instrument: str, candles: pd.DataFrame, eng: sa.Engine | None = None) -> int:
    """Store ``candles`` as the instrument's complete history (delete + insert in one transaction)."""
    df = validate_candles(candles)
    if (df["instrument"] != instrument).any():
        raise ValueError(f"candles of other instruments than {instrument!r} given")
    with (eng or engine()).begin() as c:
        c.execute(sa.delete(candles_table).where(candles_table.c.instrument == instrument))
        _insert(c, candles_table, df[CANDLE_COLUMNS])
    return len(df)


def read_features(eng: sa.Engine | None = None) -> pd.DataFrame:
    """The feature table (silver), sorted by instrument and event time."""
    with (eng or engine()).connect() as c:
        df = pd.read_sql(
            sa.select(features_table).order_by(features_table.c.instrument, features_table.c.event_timestamp), c
        )
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    df[TARGET] = df[TARGET].astype("float64")
    return df


def replace_features(features: pd.DataFrame, eng: sa.Engine | None = None) -> int:
    """Replace the whole feature table with ``features`` in one transaction."""
    cols = [c.name for c in features_table.columns]
    with (eng or engine()).begin() as c:
        c.execute(sa.delete(features_table))
        _insert(c, features_table, features[cols])
    return len(features)


def _insert(conn: sa.Connection, table: sa.Table, df: pd.DataFrame) -> None:
    if df.empty:
        return
    rows = df.astype(object).where(df.notna(), None).to_dict("records")
    for r in rows:
        for k, v in r.items():
            if isinstance(v, pd.Timestamp):
                r[k] = v.to_pydatetime()
    conn.execute(sa.insert(table), rows)
