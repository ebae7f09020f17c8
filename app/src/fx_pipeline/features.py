"""Market features from H1 candles. One row per (instrument, hour); the row is known at the candle's close."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .candles import validate_candles
from .feature_defs import FEATURE_COLUMNS, FLOAT_FEATURES, INT_FEATURES  # noqa: F401 (defined there, pandas-free)

TARGET = "target_up"
MIN_HISTORY = 48  # hours of candles needed before the first complete feature row


def _one_instrument(c: pd.DataFrame) -> pd.DataFrame:
    close = c["mid_c"]
    logc = np.log(close)
    r1 = logc.diff()
    out = pd.DataFrame(index=c.index)
    out["instrument"] = c["instrument"]
    # Candle "time" is the hour's open: its values are known at open + 1h.
    out["event_timestamp"] = c["time"] + pd.Timedelta(hours=1)
    out["ret_1h"] = r1
    out["ret_4h"] = logc.diff(4)
    out["ret_24h"] = logc.diff(24)
    out["vol_24h"] = r1.rolling(24, min_periods=24).std()
    mean24 = close.rolling(24, min_periods=24).mean()
    std24 = close.rolling(24, min_periods=24).std()
    out["zscore_24h"] = (close - mean24) / std24.replace(0.0, np.nan)
    out["ewma_12_ratio"] = close / close.ewm(span=12, adjust=False).mean() - 1.0
    out["ewma_48_ratio"] = close / close.ewm(span=48, adjust=False).mean() - 1.0
    out["spread_bps"] = (c["ask_c"] - c["bid_c"]) / close * 1e4
    out["range_bps"] = (c["mid_h"] - c["mid_l"]) / close * 1e4
    hour = c["time"].dt.hour
    out["session_asia"] = ((hour >= 23) | (hour < 8)).astype("int64")
    out["session_london"] = ((hour >= 7) & (hour < 16)).astype("int64")
    out["session_ny"] = ((hour >= 12) & (hour < 21)).astype("int64")
    nxt = close.shift(-1)
    out[TARGET] = np.where(nxt.isna(), np.nan, (nxt > close).astype("float64"))
    out = out.iloc[MIN_HISTORY - 1 :] if len(out) >= MIN_HISTORY else out.iloc[0:0]
    return out


def build_features(candles: pd.DataFrame) -> pd.DataFrame:
    """Features and the next-hour direction label (NaN on each instrument's last row)."""
    c = validate_candles(candles)
    parts = [_one_instrument(g.reset_index(drop=True)) for _, g in c.groupby("instrument", sort=True)]
    if not parts:
        raise ValueError("no candles to build features from")
    out = pd.concat(parts, ignore_index=True)
    out = out.dropna(subset=FLOAT_FEATURES)
    if out.empty:
        raise ValueError(f"not enough candles: need at least {MIN_HISTORY} consecutive hours per instrument")
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out.reset_index(drop=True)


def latest_rows(features: pd.DataFrame) -> pd.DataFrame:
    """The newest feature row per instrument (what the online store serves)."""
    idx = features.groupby("instrument")["event_timestamp"].idxmax()
    return features.loc[idx].reset_index(drop=True)
