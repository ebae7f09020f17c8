"""The units of work the Airflow DAGs call. Each reads its settings from the environment."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .candles import merge_candles
from .config import OandaSettings, PipelineSettings
from .feature_defs import SILVER_FILE

log = logging.getLogger(__name__)


def bronze_path(settings: PipelineSettings, instrument: str) -> Path:
    return settings.data_dir / "bronze" / f"{instrument}_H1.parquet"


def silver_path(settings: PipelineSettings) -> Path:
    return settings.data_dir / SILVER_FILE


def collect_candles(instrument: str, settings: PipelineSettings | None = None,
                    now: datetime | None = None, client=None) -> dict:
    """Fetch complete H1 candles (OANDA or the sample source) and merge them into the bronze parquet."""
    s = settings or PipelineSettings()
    if instrument not in s.instruments:
        raise ValueError(f"instrument {instrument!r} is not in INSTRUMENTS {s.instruments}")
    path = bronze_path(s, instrument)
    old = pd.read_parquet(path) if path.exists() else None
    hours = s.history_hours if old is None or old.empty else 72  # backfill once, then top up
    if s.data_source == "sample":
        from .market import TradingCalendar
        from .sample import sample_candles

        new = sample_candles(instrument, hours, end=now, seed=s.sample_seed,
                             calendar=TradingCalendar(s.market_holidays))
    else:
        from .oanda import OandaClient

        client = client or OandaClient.from_settings(OandaSettings())
        new = client.history(instrument, hours, now=now)
    merged = merge_candles(old, new)
    path.parent.mkdir(parents=True, exist_ok=True)
    merged.to_parquet(path, index=False)
    log.info("%s: %d new candles, %d in bronze (%s)", instrument, len(new), len(merged), s.data_source)
    return {"instrument": instrument, "fetched": len(new), "stored": len(merged),
            "last": str(merged["time"].max()) if len(merged) else None}


def build_feature_table(settings: PipelineSettings | None = None) -> dict:
    """Bronze candles of every instrument -> silver feature parquet (the Feast batch source)."""
    from .features import build_features

    s = settings or PipelineSettings()
    frames = [pd.read_parquet(bronze_path(s, i)) for i in s.instruments if bronze_path(s, i).exists()]
    if not frames:
        raise FileNotFoundError(f"no bronze candles under {s.data_dir / 'bronze'}: run collect first")
    feats = build_features(pd.concat(frames, ignore_index=True))
    out = silver_path(s)
    out.parent.mkdir(parents=True, exist_ok=True)
    feats.to_parquet(out, index=False)
    log.info("wrote %d feature rows to %s", len(feats), out)
    return {"rows": len(feats), "latest": str(feats["event_timestamp"].max())}


def materialize_online(settings: PipelineSettings | None = None, end: datetime | None = None,
                       store=None) -> dict:
    """Register the Feast objects (idempotent) and materialize the silver rows into Redis."""
    from . import feast_store

    s = settings or PipelineSettings()
    if not silver_path(s).exists():
        raise FileNotFoundError(f"{silver_path(s)} missing: run build_features first")
    store = store or feast_store.load_store(s.feast_repo_path)
    feast_store.apply(store, s.feast_repo_path)
    end = end or datetime.now(timezone.utc)
    feats = pd.read_parquet(silver_path(s))
    start = feats["event_timestamp"].max() - pd.Timedelta(hours=48)
    feast_store.materialize(store, end=end, start=start.to_pydatetime())
    return {"end": end.isoformat(), "instruments": sorted(feats["instrument"].unique().tolist())}


def train_model(instrument: str = "USD_SGD", settings: PipelineSettings | None = None) -> dict:
    from .train import train_and_register

    s = settings or PipelineSettings()
    if not s.mlflow_tracking_uri:
        raise RuntimeError("MLFLOW_TRACKING_URI is not set")
    feats = pd.read_parquet(silver_path(s))
    r = train_and_register(feats, model_name=s.model_name, alias=s.model_alias,
                           tracking_uri=s.mlflow_tracking_uri, instrument=instrument)
    return {"version": r.version, "promoted": r.promoted, **r.metrics}
