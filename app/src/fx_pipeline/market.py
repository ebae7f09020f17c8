"""The FX trading calendar: when the market is open, and how much trading time lies between two instants.

FX trades from Sunday 17:00 to Friday 17:00 New York time (22:00 UTC in winter, 21:00 UTC while New York keeps
daylight saving time; the offset comes from the tz database through zoneinfo). Trading day D runs from 17:00 New York
on D-1 to 17:00 New York on D; the closed trading days are Saturday, Sunday and each configured holiday (an ISO date,
e.g. 2026-12-25 closes Thursday 24 December 17:00 to Friday 25 December 17:00 New York).

Used by the inference service (staleness counts trading time) and by the sample source (no candles while closed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
CLOSE_TIME = time(17, 0)  # New York wall time at which one trading day ends and the next begins
HOLIDAYS_ENV = "MARKET_HOLIDAYS"


def parse_holidays(value: object, setting: str = HOLIDAYS_ENV) -> frozenset[date]:
    """Parse a comma list of ISO dates (``2026-12-25,2027-01-01``); empty means no holidays."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        items: list[object] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        raise ValueError(f"{setting} must be a comma-separated list of ISO dates, got {type(value).__name__}")
    out = set()
    for item in items:
        if isinstance(item, date) and not isinstance(item, datetime):
            out.add(item)
            continue
        try:
            if not isinstance(item, str) or len(item) != 10:
                raise ValueError
            out.add(date.fromisoformat(item))
        except ValueError:
            raise ValueError(f"{setting} item {item!r} is not a date: give ISO dates YYYY-MM-DD separated by "
                             "commas, e.g. 2026-12-25,2027-01-01 (each closes that New York trading day, "
                             "17:00 the day before to 17:00 that day)") from None
    return frozenset(out)


class TradingCalendar:
    def __init__(self, holidays: Iterable[date] = ()):
        self.holidays = frozenset(holidays)

    def _day_closed(self, d: date) -> bool:
        return d.weekday() >= 5 or d in self.holidays

    @staticmethod
    def _trading_day(t: datetime) -> date:
        """The trading day an instant belongs to: the New York date, plus one from 17:00 on."""
        local = t.astimezone(NEW_YORK)
        return local.date() + timedelta(days=1) if local.time() >= CLOSE_TIME else local.date()

    @staticmethod
    def _day_bounds(d: date) -> tuple[datetime, datetime]:
        start = datetime.combine(d - timedelta(days=1), CLOSE_TIME, NEW_YORK).astimezone(timezone.utc)
        end = datetime.combine(d, CLOSE_TIME, NEW_YORK).astimezone(timezone.utc)
        return start, end

    def is_open(self, t: datetime) -> bool:
        return not self._day_closed(self._trading_day(_aware(t)))

    def trading_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of open market in [start, end); negative when end is before start (a clock skew stays visible)."""
        start, end = _aware(start), _aware(end)
        if end < start:
            return -self.trading_seconds(end, start)
        total = (end - start).total_seconds()
        d, last = self._trading_day(start), self._trading_day(end)
        while d <= last:
            if self._day_closed(d):
                lo, hi = self._day_bounds(d)
                overlap = (min(hi, end) - max(lo, start)).total_seconds()
                if overlap > 0:
                    total -= overlap
            d += timedelta(days=1)
        return total


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t.isoformat()}: give a timezone-aware instant")
    return t
