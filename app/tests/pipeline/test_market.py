"""The trading calendar (fx_pipeline.market) and the sample source that follows it, at fixed clock times.

Winter week: Friday 2026-01-09 closes 22:00 UTC, Sunday 2026-01-11 opens 22:00 UTC (New York on EST, UTC-5).
Summer week: Friday 2026-07-10 closes 21:00 UTC, Sunday 2026-07-12 opens 21:00 UTC (New York on EDT, UTC-4).
"""

from datetime import date, datetime, timezone

import pandas as pd
import pytest

from fx_pipeline.market import TradingCalendar, parse_holidays
from fx_pipeline.sample import sample_candles


def utc(*a):
    return datetime(*a, tzinfo=timezone.utc)


CAL = TradingCalendar()
WINTER_CLOSE, SUMMER_CLOSE = utc(2026, 1, 9, 22), utc(2026, 7, 10, 21)


@pytest.mark.parametrize("now,is_open,age", [
    (utc(2026, 1, 10, 12), False, 0.0),         # Saturday noon
    (utc(2026, 1, 11, 21, 59), False, 0.0),     # a minute before the Sunday open
    (utc(2026, 1, 11, 22, 1), True, 60.0),      # a minute after
    (utc(2026, 1, 12, 8), True, 36000.0),       # Monday 08:00 UTC: ten hours of trading
    (utc(2026, 1, 9, 21, 59), True, -60.0),     # Friday, a minute before the close
])
def test_winter_weekend(now, is_open, age):
    assert CAL.is_open(now) is is_open
    assert CAL.trading_seconds(WINTER_CLOSE, now) == age


@pytest.mark.parametrize("now,is_open,age", [
    (utc(2026, 7, 11, 12), False, 0.0),
    (utc(2026, 7, 12, 20, 59), False, 0.0),
    (utc(2026, 7, 12, 21, 1), True, 60.0),
    (utc(2026, 7, 13, 8), True, 39600.0),       # the open was an hour earlier in UTC than in winter
    (utc(2026, 7, 10, 21, 30), False, 0.0),     # 22:00 UTC would still be open in winter, not in summer
])
def test_summer_weekend(now, is_open, age):
    assert CAL.is_open(now) is is_open
    assert CAL.trading_seconds(SUMMER_CLOSE, now) == age


def test_configured_holiday_closes_its_trading_day():
    # 2026-12-25 is a Friday: closed from Thursday 22:00 UTC to Sunday 22:00 UTC.
    cal = TradingCalendar(parse_holidays("2026-12-25"))
    thursday_close, friday_noon = utc(2026, 12, 24, 22), utc(2026, 12, 25, 12)
    assert cal.is_open(friday_noon) is False and CAL.is_open(friday_noon) is True
    assert cal.trading_seconds(thursday_close, friday_noon) == 0.0
    assert CAL.trading_seconds(thursday_close, friday_noon) == 50400.0
    assert cal.trading_seconds(thursday_close, utc(2026, 12, 27, 22, 1)) == 60.0
    # a summer holiday: Friday 2026-07-03 (Independence Day observed)
    cal = TradingCalendar(parse_holidays("2026-07-03"))
    assert cal.trading_seconds(utc(2026, 7, 2, 21), utc(2026, 7, 5, 20, 59)) == 0.0


def test_trading_seconds_across_weeks_and_reversed():
    # Monday 00:00 UTC to the next Monday 00:00 UTC in winter: five trading days.
    assert CAL.trading_seconds(utc(2026, 1, 12), utc(2026, 1, 19)) == 432000.0
    assert CAL.trading_seconds(utc(2026, 1, 19), utc(2026, 1, 12)) == -432000.0


def test_holiday_setting_errors_name_setting_value_and_format():
    assert parse_holidays("") == frozenset() and parse_holidays(None) == frozenset()
    assert parse_holidays(" 2026-12-25, 2027-01-01 ,") == {date(2026, 12, 25), date(2027, 1, 1)}
    for bad in ("2026-13-01", "25/12/2026", "2026-12-25T00:00", "20261225"):
        with pytest.raises(ValueError) as e:
            parse_holidays(f"2026-01-01,{bad}")
        assert str(e.value) == (
            f"MARKET_HOLIDAYS item {bad!r} is not a date: give ISO dates YYYY-MM-DD separated by commas, "
            "e.g. 2026-12-25,2027-01-01 (each closes that New York trading day, 17:00 the day before to 17:00 "
            "that day)")
    with pytest.raises(ValueError, match="^naive datetime 2026-01-10T12:00:00: give a timezone-aware instant$"):
        CAL.is_open(datetime(2026, 1, 10, 12))


@pytest.mark.parametrize("end,last_candle,first_after", [
    # winter: last candle opens Friday 21:00 UTC, the next Sunday 22:00 UTC
    (utc(2026, 1, 12, 8), "2026-01-09 21:00", "2026-01-11 22:00"),
    # summer: an hour earlier in UTC
    (utc(2026, 7, 13, 8), "2026-07-10 20:00", "2026-07-12 21:00"),
])
def test_sample_source_follows_new_york_close(end, last_candle, first_after):
    df = sample_candles("USD_SGD", 72, end=end)
    times = [t.strftime("%Y-%m-%d %H:%M") for t in df["time"]]
    i = times.index(last_candle)
    assert times[i + 1] == first_after
    assert df["time"].max() == pd.Timestamp(end) - pd.Timedelta(hours=1)


def test_sample_source_skips_a_configured_holiday():
    end = utc(2026, 12, 28, 0)
    cal = TradingCalendar(parse_holidays("2026-12-25"))
    times = [t.strftime("%Y-%m-%d %H:%M") for t in sample_candles("USD_SGD", 96, end=end, calendar=cal)["time"]]
    assert times[times.index("2026-12-24 21:00") + 1] == "2026-12-27 22:00"
    plain = [t.strftime("%Y-%m-%d %H:%M") for t in sample_candles("USD_SGD", 96, end=end)["time"]]
    assert plain[plain.index("2026-12-24 21:00") + 1] == "2026-12-24 22:00"


def test_collect_task_takes_market_holidays_from_the_environment(monkeypatch, feast_registry_env):
    from pydantic import ValidationError

    from fx_pipeline import tasks
    from fx_pipeline.config import PipelineSettings

    monkeypatch.setenv("FX_DATA_SOURCE", "sample")
    monkeypatch.setenv("FX_HISTORY_HOURS", "100")
    monkeypatch.setenv("MARKET_HOLIDAYS", "2026-12-25")
    out = tasks.collect_candles("USD_SGD", PipelineSettings(), now=utc(2026, 12, 28, 0))
    # 100 hours back from Monday 00:00 UTC: Wednesday 20:00 to Sunday 23:00. Open with the holiday: Wednesday 20:00 to
    # Thursday 21:00 (26 candles) and Sunday 22:00, 23:00; without it Friday to 21:00 would add 24 (52).
    assert out == {"instrument": "USD_SGD", "fetched": 28, "stored": 28, "last": "2026-12-27 23:00:00+00:00"}
    monkeypatch.setenv("MARKET_HOLIDAYS", "2026-12-25,Christmas")
    with pytest.raises(ValidationError, match="MARKET_HOLIDAYS item 'Christmas' is not a date: give ISO dates"):
        PipelineSettings()
