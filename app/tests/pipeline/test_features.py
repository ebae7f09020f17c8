from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from fx_pipeline.config import PipelineSettings, parse_instruments
from fx_pipeline.features import FEATURE_COLUMNS, TARGET, build_features
from fx_pipeline.sample import sample_candles

END = datetime(2025, 3, 7, 12, tzinfo=timezone.utc)


def test_sample_is_deterministic_and_consistent_across_windows():
    a = sample_candles("USD_SGD", 500, end=END, seed=1)
    b = sample_candles("USD_SGD", 500, end=END, seed=1)
    pd.testing.assert_frame_equal(a, b)
    c = sample_candles("USD_SGD", 500, end=END, seed=2)
    assert not np.allclose(a["mid_c"].to_numpy(), c["mid_c"].to_numpy())
    # a later window agrees on the overlapping hours (same hour -> same candle)
    later = sample_candles("USD_SGD", 500, end=datetime(2025, 3, 7, 20, tzinfo=timezone.utc), seed=1)
    m = a.merge(later, on="time", suffixes=("", "_l"))
    assert len(m) > 300 and np.allclose(m["mid_c"], m["mid_c_l"])


def test_sample_skips_weekend_and_has_valid_prices():
    df = sample_candles("USD_SGD", 24 * 14, end=END)
    assert not (df["time"].dt.dayofweek == 5).any()
    assert (df["ask_c"] > df["bid_c"]).all() and (df["mid_h"] >= df["mid_l"]).all()
    assert df["time"].max() < pd.Timestamp(END)


def test_features_values_and_label():
    c = sample_candles("USD_SGD", 400, end=END)
    f = build_features(c)
    assert set(FEATURE_COLUMNS) <= set(f.columns)
    assert not f[FEATURE_COLUMNS].isna().any().any()
    row = f.iloc[10]
    src = c.set_index("time")
    t_open = row["event_timestamp"] - pd.Timedelta(hours=1)
    close = src.loc[t_open, "mid_c"]
    prev = src["mid_c"].shift(1).loc[t_open]
    assert row["ret_1h"] == pytest.approx(np.log(close / prev))
    assert row["spread_bps"] == pytest.approx((src.loc[t_open, "ask_c"] - src.loc[t_open, "bid_c"]) / close * 1e4)
    nxt = src["mid_c"].shift(-1).loc[t_open]
    assert row[TARGET] == float(nxt > close)
    assert np.isnan(f[TARGET].iloc[-1])  # no label for the newest hour
    assert set(f["session_london"].unique()) <= {0, 1}


def test_features_do_not_look_ahead():
    c = sample_candles("USD_SGD", 600, end=END)
    full = build_features(c)
    cut = build_features(c.iloc[:400])
    common = cut["event_timestamp"].iloc[:-1]
    a = full.set_index("event_timestamp").loc[common, FEATURE_COLUMNS]
    b = cut.set_index("event_timestamp").loc[common, FEATURE_COLUMNS]
    pd.testing.assert_frame_equal(a, b)


def test_too_little_history_is_an_error():
    with pytest.raises(ValueError, match="at least 48"):
        build_features(sample_candles("USD_SGD", 30, end=END))


def test_instrument_settings(monkeypatch):
    assert parse_instruments("usd_sgd, EUR_USD,USD_SGD") == ["USD_SGD", "EUR_USD"]
    with pytest.raises(ValueError, match="'USDSGD'"):
        parse_instruments("USDSGD")
    monkeypatch.setenv("INSTRUMENTS", "USD_SGD,GBP_USD")
    monkeypatch.setenv("FX_DATA_SOURCE", "sample")
    assert PipelineSettings().instruments == ["USD_SGD", "GBP_USD"]
    monkeypatch.setenv("FX_DATA_SOURCE", "csv")
    with pytest.raises(ValueError, match="FX_DATA_SOURCE"):
        PipelineSettings()
