"""Minimal OANDA v20 REST client for H1 candles (price MBA, complete candles only)."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Callable

import pandas as pd
import requests

from .candles import CANDLE_COLUMNS, validate_candles
from .config import INSTRUMENT_RE, OandaSettings

log = logging.getLogger(__name__)

HOSTS = {
    "practice": "https://api-fxpractice.oanda.com",
    "live": "https://api-fxtrade.oanda.com",
}
MAX_COUNT = 5000  # OANDA's limit of candles per request
RETRY_STATUSES = {429, 500, 502, 503, 504}


class OandaError(RuntimeError):
    """OANDA answered with an error that retrying does not fix."""


class OandaAuthError(OandaError):
    """401: the token is missing, wrong, or for the other environment."""


class OandaClient:
    def __init__(
        self,
        token: str,
        account_id: str,
        environment: str = "practice",
        *,
        base_url: str | None = None,
        session: requests.Session | None = None,
        max_retries: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if environment not in HOSTS:
            raise ValueError(f"OANDA_ENVIRONMENT must be one of {sorted(HOSTS)}, got {environment!r}")
        if not token:
            raise ValueError("OANDA_API_TOKEN is empty")
        if not account_id:
            raise ValueError("OANDA_ACCOUNT_ID is empty")
        self.environment = environment
        self.account_id = account_id
        self.base_url = (base_url or HOSTS[environment]).rstrip("/")
        self._session = session or requests.Session()
        self._session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept-Datetime-Format": "RFC3339"}
        )
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout = timeout
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: OandaSettings | None = None, **kwargs) -> "OandaClient":
        s = settings or OandaSettings()
        return cls(s.api_token.get_secret_value(), s.account_id, s.environment, **kwargs)

    def __repr__(self) -> str:  # never show the token
        return f"OandaClient(environment={self.environment!r}, base_url={self.base_url!r})"

    # -- HTTP -------------------------------------------------------------------------------------
    def _get(self, path: str, params: dict | None = None) -> dict:
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            try:
                resp = self._session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                status, detail, retry_after = None, str(exc), None
            else:
                if resp.status_code == 200:
                    return resp.json()
                status = resp.status_code
                detail = _error_message(resp)
                retry_after = resp.headers.get("Retry-After")
                if status == 401:
                    raise OandaAuthError(
                        f"OANDA rejected the API token (HTTP 401) on the {self.environment} environment "
                        f"({self.base_url}): check OANDA_API_TOKEN and that OANDA_ENVIRONMENT matches the "
                        f"account type. OANDA said: {detail}"
                    )
                if status not in RETRY_STATUSES:
                    raise OandaError(f"OANDA GET {path} failed with HTTP {status}: {detail}")
            if attempt >= self.max_retries:
                raise OandaError(
                    f"OANDA GET {path} still failing after {attempt + 1} attempts "
                    f"(last: {'HTTP ' + str(status) if status else 'network error'}: {detail})"
                )
            delay = min(self.max_backoff_seconds, self.backoff_seconds * (2**attempt))
            if retry_after:
                try:
                    delay = max(delay, min(float(retry_after), self.max_backoff_seconds))
                except ValueError:
                    pass
            log.warning("OANDA GET %s: %s, retry %d/%d in %.1fs", path, status or "network error",
                        attempt + 1, self.max_retries, delay)
            self._sleep(delay)
            attempt += 1

    # -- API --------------------------------------------------------------------------------------
    def account_instruments(self) -> list[str]:
        data = self._get(f"/v3/accounts/{self.account_id}/instruments")
        return [i["name"] for i in data.get("instruments", [])]

    def candles(
        self,
        instrument: str,
        *,
        count: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        granularity: str = "H1",
    ) -> pd.DataFrame:
        """Complete candles for ``instrument``: mid, bid and ask OHLC (price=MBA)."""
        if not INSTRUMENT_RE.match(instrument):
            raise ValueError(f"instrument {instrument!r} is not an OANDA instrument like USD_SGD")
        params: dict[str, str | int] = {"price": "MBA", "granularity": granularity}
        if start is not None:
            params["from"] = _rfc3339(start)
            if end is not None:
                params["to"] = _rfc3339(end)
            else:
                params["count"] = min(count or MAX_COUNT, MAX_COUNT)
        else:
            if count is None or not 1 <= count <= MAX_COUNT:
                raise ValueError(f"count must be 1..{MAX_COUNT} when no start is given, got {count!r}")
            params["count"] = count
        data = self._get(f"/v3/instruments/{instrument}/candles", params)
        return parse_candles(data, instrument)

    def history(self, instrument: str, hours: int, now: datetime | None = None) -> pd.DataFrame:
        """The last ``hours`` hours of complete H1 candles, paging by OANDA's 5000-candle limit."""
        now = now or datetime.now(timezone.utc)
        start = now - pd.Timedelta(hours=hours)
        frames = []
        cursor = start
        while cursor < now:
            page = self.candles(instrument, start=cursor, count=MAX_COUNT)
            if page.empty:
                break
            frames.append(page)
            last = page["time"].max().to_pydatetime()
            if last <= cursor:
                break
            cursor = last + pd.Timedelta(seconds=1)
            if len(page) < MAX_COUNT:
                break
        if not frames:
            return pd.DataFrame(columns=CANDLE_COLUMNS)
        return validate_candles(pd.concat(frames, ignore_index=True))


def _rfc3339(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("errorMessage") or body)[:300]
    except ValueError:
        return resp.text[:300]


def parse_candles(data: dict, instrument: str) -> pd.DataFrame:
    """Turn a v20 candles response into the candle frame; incomplete candles are dropped."""
    rows = []
    for c in data.get("candles", []):
        if not c.get("complete", False):
            continue
        missing = [k for k in ("mid", "bid", "ask") if k not in c]
        if missing:
            raise OandaError(f"candle at {c.get('time')} lacks {missing}: request price=MBA")
        row = {"time": c["time"], "instrument": instrument, "volume": int(c.get("volume", 0))}
        for side in ("mid", "bid", "ask"):
            for f in ("o", "h", "l", "c"):
                row[f"{side}_{f}"] = float(c[side][f])
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=CANDLE_COLUMNS)
    return validate_candles(pd.DataFrame(rows))
