"""Candle frame schema shared by the OANDA client and the synthetic source."""

from __future__ import annotations

import pandas as pd

PRICE_COLUMNS = [f"{side}_{f}" for side in ("mid", "bid", "ask") for f in ("o", "h", "l", "c")]
CANDLE_COLUMNS = ["time", "instrument", "volume", *PRICE_COLUMNS]


def validate_candles(df: pd.DataFrame) -> pd.DataFrame:
    """Check columns, types and ordering; return a copy sorted by time without duplicate hours."""
    missing = [c for c in CANDLE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"candle frame lacks columns {missing}")
    out = df[CANDLE_COLUMNS].copy()
    out["time"] = pd.to_datetime(out["time"], utc=True)
    for c in PRICE_COLUMNS:
        out[c] = out[c].astype("float64")
    out["volume"] = out["volume"].astype("int64")
    bad = out[(out["ask_c"] < out["bid_c"]) | (out[PRICE_COLUMNS] <= 0).any(axis=1)]
    if len(bad):
        raise ValueError(f"{len(bad)} candles have ask < bid or non-positive prices, first at {bad['time'].iloc[0]}")
    out = out.sort_values(["instrument", "time"]).drop_duplicates(["instrument", "time"], keep="last")
    return out.reset_index(drop=True)


def merge_candles(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    if old is None or old.empty:
        return validate_candles(new)
    return validate_candles(pd.concat([old, new], ignore_index=True))
