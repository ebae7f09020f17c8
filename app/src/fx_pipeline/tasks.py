"""The units of work the Airflow DAGs call. Each reads its settings from the environment."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pandas as pd

from . import datastore
from .candles import merge_candles
from .config import OandaSettings, PipelineSettings

log = logging.getLogger(__name__)


class SourceUnavailable(RuntimeError):
    """The candle source failed (OANDA down, refused the token, answered an error): nothing was stored."""


def collect_candles(instrument: str, settings: PipelineSettings | None = None,
                    now: datetime | None = None, client=None) -> dict:
    """Fetch complete H1 candles (OANDA or the sample source) and merge them into the stored candles (bronze).

    A failing source raises SourceUnavailable naming the cause, before anything is written: the stored candles,
    the feature table and the champion model stay as they were.
    """
    s = settings or PipelineSettings()
    if instrument not in s.instruments:
        raise ValueError(f"instrument {instrument!r} is not in INSTRUMENTS {s.instruments}")
    old = datastore.read_candles(instrument)
    hours = s.history_hours if old.empty else 72  # backfill once, then top up
    if s.data_source == "sample":
        from .market import TradingCalendar
        from .sample import sample_candles

        new = sample_candles(instrument, hours, end=now, seed=s.sample_seed,
                             calendar=TradingCalendar(s.market_holidays))
    else:
        new = _fetch_oanda(instrument, hours, now, client)
    merged = merge_candles(old, new)
    datastore.replace_candles(instrument, merged)
    log.info("%s: %d new candles, %d stored (%s)", instrument, len(new), len(merged), s.data_source)
    return {"instrument": instrument, "fetched": len(new), "stored": len(merged),
            "last": str(merged["time"].max()) if len(merged) else None}


def _fetch_oanda(instrument: str, hours: int, now: datetime | None, client) -> pd.DataFrame:
    from .oanda import OandaAuthError, OandaClient, OandaError

    try:
        client = client or OandaClient.from_settings(OandaSettings())
        return client.history(instrument, hours, now=now)
    except OandaAuthError as exc:
        raise SourceUnavailable(f"OANDA source failed for {instrument}: token rejected. {exc}") from exc
    except OandaError as exc:
        raise SourceUnavailable(f"OANDA source failed for {instrument}: {exc}") from exc


def build_feature_table(settings: PipelineSettings | None = None) -> dict:
    """Stored candles of every instrument -> the feature table (silver, the Feast offline store's source)."""
    from .features import build_features

    s = settings or PipelineSettings()
    candles = datastore.read_candles()
    candles = candles[candles["instrument"].isin(s.instruments)]
    if candles.empty:
        raise LookupError(f"no candles stored for {s.instruments} in {datastore.CANDLES_TABLE}: run collect first")
    feats = build_features(candles)
    datastore.replace_features(feats)
    log.info("wrote %d feature rows to %s", len(feats), datastore.FEATURES_TABLE)
    return {"rows": len(feats), "latest": str(feats["event_timestamp"].max())}


def materialize_online(settings: PipelineSettings | None = None, end: datetime | None = None,
                       store=None) -> dict:
    """Register the Feast objects (idempotent) and materialize the feature table's rows into Redis."""
    from . import feast_store

    s = settings or PipelineSettings()
    feats = datastore.read_features()
    if feats.empty:
        raise LookupError(f"{datastore.FEATURES_TABLE} is empty: run build_features first")
    store = store or feast_store.load_store(s.feast_repo_path)
    feast_store.apply(store, s.feast_repo_path)
    end = end or datetime.now(timezone.utc)
    start = feats["event_timestamp"].max() - pd.Timedelta(hours=48)
    feast_store.materialize(store, end=end, start=start.to_pydatetime())
    return {"end": end.isoformat(), "instruments": sorted(feats["instrument"].unique().tolist())}


def train_model(instrument: str = "USD_SGD", settings: PipelineSettings | None = None) -> dict:
    from .train import train_and_register

    s = settings or PipelineSettings()
    if not s.mlflow_tracking_uri:
        raise RuntimeError("MLFLOW_TRACKING_URI is not set")
    feats = datastore.read_features()
    r = train_and_register(feats, model_name=s.model_name, alias=s.model_alias,
                           tracking_uri=s.mlflow_tracking_uri, instrument=instrument)
    return {"version": r.version, "promoted": r.promoted, **r.metrics}
