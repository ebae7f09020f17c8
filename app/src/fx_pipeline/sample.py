"""Deterministic synthetic H1 candles for sample mode (no OANDA account needed)."""

from __future__ import annotations

import zlib
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from .candles import validate_candles
from .market import TradingCalendar

START_PRICE = {"USD_SGD": 1.35, "EUR_USD": 1.08, "GBP_USD": 1.27, "USD_JPY": 150.0}


def market_open(ts: pd.DatetimeIndex, calendar: TradingCalendar | None = None) -> np.ndarray:
    """Whether each candle opens while the market is open (fx_pipeline.market: New York time, holidays)."""
    cal = calendar or TradingCalendar()
    return np.fromiter((cal.is_open(t.to_pydatetime()) for t in ts), dtype=bool, count=len(ts))


def sample_candles(
    instrument: str, hours: int, end: datetime | None = None, seed: int = 42,
    calendar: TradingCalendar | None = None,
) -> pd.DataFrame:
    """Complete candles for the ``hours`` hours before ``end`` (default: the last full hour).

    The same (instrument, seed, hour) always gives the same candle, so repeated runs overlap
    consistently: the random stream is anchored at a fixed epoch, not at ``end``.
    """
    end_ts = pd.Timestamp(end or datetime.now(timezone.utc)).tz_convert("UTC").floor("h")
    anchor = pd.Timestamp("2020-01-01", tz="UTC")
    total = int((end_ts - anchor) / pd.Timedelta(hours=1))
    if total < hours:
        raise ValueError(f"end {end_ts} is too close to the sample anchor {anchor}")
    rng = np.random.default_rng([seed, zlib.crc32(instrument.encode())])
    # Mildly mean-reverting log price with hour-of-day volatility: gives the model something to learn.
    shocks = rng.standard_normal(total)
    times_all = anchor + pd.to_timedelta(np.arange(total), unit="h")
    hour_vol = 0.0004 * (1.0 + 0.6 * np.isin(times_all.hour, range(7, 17)))
    logp = np.empty(total)
    x = 0.0
    for i in range(total):
        x = 0.995 * x + hour_vol[i] * shocks[i]
        logp[i] = x
    sl = slice(total - hours, total)
    times = times_all[sl]
    base = START_PRICE.get(instrument, 1.0)
    close = base * np.exp(logp[sl])
    prev = base * np.exp(np.concatenate([[logp[total - hours - 1]], logp[sl][:-1]]))
    wiggle = np.abs(rng.standard_normal(total)[sl]) * hour_vol[sl] * base
    high = np.maximum(prev, close) + wiggle
    low = np.minimum(prev, close) - wiggle
    half_spread = base * (0.00008 + 0.00004 * (~np.isin(times.hour, range(7, 17))))
    df = pd.DataFrame({"time": times, "instrument": instrument})
    df["volume"] = (200 + 800 * rng.random(total)[sl]).astype("int64")
    for name, mid in (("o", prev), ("h", high), ("l", low), ("c", close)):
        df[f"mid_{name}"] = mid
        df[f"bid_{name}"] = mid - half_spread
        df[f"ask_{name}"] = mid + half_spread
    df = df[market_open(pd.DatetimeIndex(df["time"]), calendar)]
    return validate_candles(df)
