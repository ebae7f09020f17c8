"""/predict over a market close, through the HTTP API, at fixed clock times (fx-fastapi with a fixed clock).

FEATURE_MAX_AGE_SECONDS=7200 counts trading time: features stamped at Friday's close stay current through the weekend
and until two hours after the Sunday open. Winter: New York on EST, close/open at 22:00 UTC; summer: EDT, 21:00 UTC.
"""

from datetime import datetime, timezone

import pytest

from api_helpers import write_features
from test_api import feats, make_client, trained, wait_loaded  # noqa: F401 (feats, trained: fixtures)


def utc(*a):
    return datetime(*a, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = None

    def __call__(self):
        return self.now


def ages(c, clock, now):
    """(status, trading age, clock age) of a /predict at ``now``; the ages come from the 200 body or 503 detail."""
    clock.now = now
    r = c.post("/predict", json={"instrument": "USD_SGD"})
    if r.status_code == 200:
        return 200, r.json()["feature_trading_age_seconds"], r.json()["feature_age_seconds"]
    assert r.status_code == 503 and r.json()["dependency"] == "features", r.text
    return 503, r.json()["detail"]


FRIDAY_CLOSE = {"winter": utc(2026, 1, 9, 22), "summer": utc(2026, 7, 10, 21)}
CASES = {
    "winter": [
        (utc(2026, 1, 10, 12), (200, 0.0, 50400.0)),          # Saturday noon
        (utc(2026, 1, 11, 21, 59), (200, 0.0, 172740.0)),     # a minute before the Sunday open
        (utc(2026, 1, 11, 22, 1), (200, 60.0, 172860.0)),     # a minute after
        (utc(2026, 1, 12, 8), (503, "features for USD_SGD are stale: 36000s of trading time old (208800s on the "
                                    "clock; limit FEATURE_MAX_AGE_SECONDS=7200, closed weekends by New York time "
                                    "and on MARKET_HOLIDAYS), last at 2026-01-09T22:00:00+00:00")),  # Monday morning
    ],
    "summer": [
        (utc(2026, 7, 11, 12), (200, 0.0, 54000.0)),
        (utc(2026, 7, 12, 20, 59), (200, 0.0, 172740.0)),
        (utc(2026, 7, 12, 21, 1), (200, 60.0, 172860.0)),
        (utc(2026, 7, 13, 8), (503, "features for USD_SGD are stale: 39600s of trading time old (212400s on the "
                                    "clock; limit FEATURE_MAX_AGE_SECONDS=7200, closed weekends by New York time "
                                    "and on MARKET_HOLIDAYS), last at 2026-07-10T21:00:00+00:00")),
    ],
}


@pytest.mark.parametrize("season", ["winter", "summer"])
def test_weekend_features_stay_current_until_the_open(monkeypatch, redis_client, feast_store, feats, trained, season):
    clock = Clock()
    with make_client(monkeypatch, clock=clock, FEATURE_MAX_AGE_SECONDS=7200) as c:
        wait_loaded(c)
        write_features(feast_store, feats, event_timestamp=FRIDAY_CLOSE[season])
        assert [ages(c, clock, now) for now, _ in CASES[season]] == [want for _, want in CASES[season]]
        text = c.get("/metrics").text
        assert f'fx_feature_trading_age_seconds{{instrument="USD_SGD"}} {LAST_TRADING_AGE[season]}' in text


LAST_TRADING_AGE = {"winter": "36000.0", "summer": "39600.0"}


def test_configured_holiday(monkeypatch, redis_client, feast_store, feats, trained):
    # Friday 2026-12-25: with it configured, Thursday's close is current on Friday noon; without, it is 14 h old.
    write_features(feast_store, feats, event_timestamp=utc(2026, 12, 24, 22))
    friday_noon = utc(2026, 12, 25, 12)
    clock = Clock()
    with make_client(monkeypatch, clock=clock, MARKET_HOLIDAYS="2026-12-25,2027-01-01") as c:
        wait_loaded(c)
        assert ages(c, clock, friday_noon) == (200, 0.0, 50400.0)
    monkeypatch.delenv("MARKET_HOLIDAYS")
    with make_client(monkeypatch, clock=clock) as c:
        wait_loaded(c)
        assert ages(c, clock, friday_noon) == (
            503, "features for USD_SGD are stale: 50400s of trading time old (50400s on the clock; limit "
                 "FEATURE_MAX_AGE_SECONDS=7200, closed weekends by New York time and on MARKET_HOLIDAYS), "
                 "last at 2026-12-24T22:00:00+00:00")


def test_malformed_holiday_is_a_startup_error_naming_setting_and_value(monkeypatch):
    from pydantic import ValidationError

    from app.settings import ServiceSettings

    monkeypatch.setenv("MARKET_HOLIDAYS", "2026-12-25,2026-12-32")
    with pytest.raises(ValidationError) as e:
        ServiceSettings()
    assert e.value.errors()[0]["msg"] == (
        "Value error, MARKET_HOLIDAYS item '2026-12-32' is not a date: give ISO dates YYYY-MM-DD separated by "
        "commas, e.g. 2026-12-25,2027-01-01 (each closes that New York trading day, 17:00 the day before to "
        "17:00 that day)")
