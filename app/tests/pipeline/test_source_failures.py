"""A failing candle source (OANDA down, answering 5xx, refusing the token): the run fails at collect with a message
naming the cause and no secret, and nothing is lost: stored candles, the feature table and the champion stay."""

import http.server
import json
import logging
import socket
import threading
import traceback
from datetime import datetime, timezone

import pytest

from fx_pipeline import datastore, tasks
from fx_pipeline.config import PipelineSettings
from fx_pipeline.oanda import OandaClient

TOKEN = "tok-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c1e-do-not-log"
ACCOUNT = "101-001-1234567-001"
NOW = datetime(2026, 3, 4, 10, 5, tzinfo=timezone.utc)


class FakeOanda(http.server.BaseHTTPRequestHandler):
    status = 503
    seen_auth: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        FakeOanda.seen_auth.append(self.headers.get("Authorization", ""))
        body = {503: {"errorMessage": "Service Unavailable"},
                401: {"errorMessage": "Insufficient authorization to perform request."}}[self.status]
        data = json.dumps(body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_oanda():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOanda)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeOanda.seen_auth = []
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens: connection refused
    return port


@pytest.fixture
def champion_stack(pipeline_env, redis_env):
    """A stack that has run once on the sample source: candles, features and champion version 1."""
    s = PipelineSettings()
    tasks.collect_candles("USD_SGD", s, now=NOW)
    tasks.build_feature_table(s)
    assert tasks.train_model("USD_SGD", s)["promoted"]
    return s


def snapshot(settings):
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri)
    return {
        "candles": datastore.read_candles("USD_SGD").to_json(),
        "features": datastore.read_features().to_json(),
        "champion": client.get_model_version_by_alias(settings.model_name, settings.model_alias).version,
        "versions": sorted(v.version for v in client.search_model_versions(f"name='{settings.model_name}'")),
    }


@pytest.mark.parametrize(("case", "cause"), [
    ("refused", "Connection refused"),
    (503, "HTTP 503: Service Unavailable"),
    (401, "token rejected. OANDA rejected the API token (HTTP 401)"),
])
def test_collect_fails_naming_the_cause_and_keeps_everything(case, cause, champion_stack, fake_oanda, monkeypatch,
                                                              caplog):
    monkeypatch.setenv("FX_DATA_SOURCE", "oanda")
    monkeypatch.setenv("OANDA_API_TOKEN", TOKEN)
    monkeypatch.setenv("OANDA_ACCOUNT_ID", ACCOUNT)
    before = snapshot(champion_stack)
    if case == "refused":
        url = f"http://127.0.0.1:{closed_port()}"
    else:
        FakeOanda.status = case
        url = f"http://127.0.0.1:{fake_oanda.server_address[1]}"
    client = OandaClient(TOKEN, ACCOUNT, base_url=url, max_retries=2, sleep=lambda s: None)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(tasks.SourceUnavailable) as info:
        tasks.collect_candles("USD_SGD", PipelineSettings(), now=NOW, client=client)
    message = str(info.value)
    assert message.startswith("OANDA source failed for USD_SGD: ") and cause in message
    shown = "".join(traceback.format_exception(info.value)) + caplog.text + repr(client)
    assert TOKEN not in shown
    if case != "refused":  # the token did reach the server, so the test would see it if it leaked
        assert FakeOanda.seen_auth and all(a == f"Bearer {TOKEN}" for a in FakeOanda.seen_auth)
    assert snapshot(champion_stack) == before  # no candle, feature row or model version touched; same champion


def test_a_dag_run_whose_source_is_down_fails_at_collect_and_releases_nothing(pipeline_env, redis_env, tmp_path,
                                                                             run_dags):
    """dag.test() of the features DAG with OANDA refusing connections: collect fails naming the cause, everything
    downstream is upstream_failed, no asset event is written (so no training run), and the token is in no log line."""
    out = run_dags("source-fails", tmp_path, FX_DATA_SOURCE="oanda", OANDA_API_TOKEN=TOKEN,
                   OANDA_ACCOUNT_ID=ACCOUNT, TEST_OANDA_URL=f"http://127.0.0.1:{closed_port()}")
    assert out["failed"] == {"state": "failed", "tasks": {
        "collect": "failed", "build_features": "upstream_failed", "materialize": "upstream_failed",
        "release_training_data": "upstream_failed"}}
    assert out["after"] == {"market_features_events": 0, "training_data_events": 0, "queued_for_training": 0}
    assert "OANDA source failed for USD_SGD: OANDA GET /v3/instruments/USD_SGD/candles still failing" in out["log"]
    assert "Connection refused" in out["log"]
    assert TOKEN not in out["log"]
