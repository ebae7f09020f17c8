"""OANDA client against a real HTTP server on loopback serving canned v20 answers."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from fx_pipeline.oanda import OandaAuthError, OandaClient, OandaError

TOKEN = "tok-SECRET-123"


def candle(t, complete=True, c="1.3500"):
    px = {"o": "1.3490", "h": "1.3510", "l": "1.3480", "c": c}
    bid = {k: f"{float(v) - 0.0001:.5f}" for k, v in px.items()}
    ask = {k: f"{float(v) + 0.0001:.5f}" for k, v in px.items()}
    return {"complete": complete, "volume": 10, "time": t, "mid": px, "bid": bid, "ask": ask}


class Fake:
    def __init__(self):
        self.script = []  # list of (status, body, headers)
        self.requests = []


@pytest.fixture
def server():
    fake = Fake()

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            u = urlparse(self.path)
            fake.requests.append({"path": u.path, "query": parse_qs(u.query), "auth": self.headers.get("Authorization")})
            status, body, headers = fake.script.pop(0) if fake.script else (500, {"errorMessage": "unscripted"}, {})
            data = json.dumps(body).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    fake.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield fake
    srv.shutdown()
    srv.server_close()


def client(fake, **kw):
    sleeps = []
    c = OandaClient(TOKEN, "101-001-1-001", "practice", base_url=fake.url, sleep=sleeps.append, **kw)
    return c, sleeps


def test_candles_mba_complete_only(server):
    server.script = [(200, {"candles": [candle("2025-01-06T00:00:00.000000000Z"),
                                        candle("2025-01-06T01:00:00.000000000Z"),
                                        candle("2025-01-06T02:00:00.000000000Z", complete=False)]}, {})]
    c, _ = client(server)
    df = c.candles("USD_SGD", count=3)
    req = server.requests[0]
    assert req["path"] == "/v3/instruments/USD_SGD/candles"
    assert req["query"]["price"] == ["MBA"] and req["query"]["granularity"] == ["H1"]
    assert req["auth"] == f"Bearer {TOKEN}"
    assert len(df) == 2  # the incomplete candle is dropped
    assert str(df["time"].dt.tz) == "UTC"
    assert df["bid_c"].iloc[0] < df["mid_c"].iloc[0] < df["ask_c"].iloc[0]


def test_retries_429_and_5xx_with_backoff(server):
    server.script = [(429, {"errorMessage": "slow down"}, {"Retry-After": "3"}),
                     (503, {"errorMessage": "busy"}, {}),
                     (200, {"candles": [candle("2025-01-06T00:00:00.000000000Z")]}, {})]
    c, sleeps = client(server, backoff_seconds=0.5)
    assert len(c.candles("USD_SGD", count=1)) == 1
    assert len(server.requests) == 3
    assert sleeps == [3.0, 1.0]  # Retry-After honoured, then exponential backoff


def test_gives_up_after_max_retries(server):
    server.script = [(500, {"errorMessage": "boom"}, {})] * 3
    c, sleeps = client(server, max_retries=2)
    with pytest.raises(OandaError, match=r"after 3 attempts.*HTTP 500"):
        c.candles("USD_SGD", count=1)
    assert len(sleeps) == 2


def test_401_is_clear_and_not_retried_and_hides_token(server):
    server.script = [(401, {"errorMessage": "Insufficient authorization to perform request."}, {})]
    c, sleeps = client(server)
    with pytest.raises(OandaAuthError) as ei:
        c.candles("USD_SGD", count=1)
    msg = str(ei.value)
    assert "401" in msg and "OANDA_API_TOKEN" in msg and "practice" in msg
    assert TOKEN not in msg and TOKEN not in repr(c)
    assert sleeps == [] and len(server.requests) == 1


def test_other_4xx_not_retried(server):
    server.script = [(400, {"errorMessage": "Invalid value specified for 'instrument'"}, {})]
    c, _ = client(server)
    with pytest.raises(OandaError, match="HTTP 400.*instrument"):
        c.candles("USD_SGD", count=1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="OANDA_ENVIRONMENT"):
        OandaClient(TOKEN, "acc", "sandbox")
    with pytest.raises(ValueError, match="OANDA_API_TOKEN"):
        OandaClient("", "acc", "practice")
    c = OandaClient(TOKEN, "acc", "live")
    assert c.base_url == "https://api-fxtrade.oanda.com"
    with pytest.raises(ValueError, match="usd_sgd"):
        c.candles("usd_sgd", count=1)


def test_settings_from_env(monkeypatch):
    from pydantic import ValidationError

    from fx_pipeline.config import OandaSettings

    monkeypatch.setenv("OANDA_API_TOKEN", TOKEN)
    monkeypatch.setenv("OANDA_ACCOUNT_ID", "101-001")
    monkeypatch.setenv("OANDA_ENVIRONMENT", "live")
    c = OandaClient.from_settings()
    assert c.environment == "live" and TOKEN not in repr(OandaSettings())
    monkeypatch.setenv("OANDA_ENVIRONMENT", "demo")
    with pytest.raises(ValidationError, match="OANDA_ENVIRONMENT"):
        OandaSettings()


def test_history_pages(server):
    first = [candle(f"2025-01-06T{h:02d}:00:00.000000000Z") for h in range(3)]
    server.script = [(200, {"candles": first}, {})]
    c, _ = client(server)
    from datetime import datetime, timezone

    df = c.history("USD_SGD", 3, now=datetime(2025, 1, 6, 3, tzinfo=timezone.utc))
    assert len(df) == 3
    assert server.requests[0]["query"]["from"] == ["2025-01-06T00:00:00.000000Z"]
