"""fx-fastapi against a real Redis populated by Feast's write path and a real MLflow registry on Postgres."""

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api_helpers import sample_features, train, write_features


def make_client(monkeypatch, clock=None, **env):
    monkeypatch.setenv("INSTRUMENTS", env.pop("INSTRUMENTS", "USD_SGD"))
    monkeypatch.setenv("MODEL_RELOAD_SECONDS", str(env.pop("MODEL_RELOAD_SECONDS", 3600)))
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    from app.main import create_app

    return TestClient(create_app(clock=clock) if clock else create_app())


def wait_loaded(client, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if client.app.state.models.current is not None:
            return
        time.sleep(0.1)
    raise AssertionError(f"model not loaded: {client.app.state.models.last_error}")


@pytest.fixture(scope="module")
def feats():
    return sample_features()


@pytest.fixture
def trained(mlflow_uri, feats):
    return train(mlflow_uri, feats, n_estimators=30)


def test_predict_happy_path(monkeypatch, redis_client, feast_store, feats, trained):
    latest = write_features(feast_store, feats, event_timestamp=datetime.now(timezone.utc) - timedelta(minutes=5))
    with make_client(monkeypatch) as c:
        wait_loaded(c)
        r = c.post("/predict", json={"instrument": "usd_sgd"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["instrument"] == "USD_SGD" and body["model_version"] == trained.version
        assert 0.0 <= body["probability_up"] <= 1.0
        assert body["direction"] == ("up" if body["probability_up"] >= 0.5 else "down")
        assert body["confidence"] == pytest.approx(max(body["probability_up"], 1 - body["probability_up"]))
        assert body["features"]["ret_1h"] == pytest.approx(float(latest["ret_1h"].iloc[0]))
        assert 250 < body["feature_age_seconds"] < 400
        # same answer as the registered model on the same row
        import mlflow.xgboost
        from fx_pipeline.features import FEATURE_COLUMNS

        m = mlflow.xgboost.load_model(f"models:/fx-usdsgd-predictor/{trained.version}")
        p = m.predict_proba(latest[FEATURE_COLUMNS].astype(float))[0, 1]
        assert body["probability_up"] == pytest.approx(float(p), rel=1e-5)

        h = c.get("/health")
        assert h.status_code == 200
        hb = h.json()
        assert 0 < hb.pop("model_load_seconds") < 120
        assert hb == {"status": "ok", "redis": True, "redis_error": None, "model_loaded": True,
                        "model_state": "ready", "model_name": "fx-usdsgd-predictor", "model_version": trained.version,
                        "model_error": None, "mlflow_reachable": True}
        text = c.get("/metrics").text
        assert 'fx_predictions_total{direction="%s",instrument="USD_SGD"} 1.0' % body["direction"] in text
        assert 'fx_inference_requests_total{endpoint="/predict",method="POST",status="200"}' in text
        assert "fx_inference_request_duration_seconds_bucket" in text
        assert "fx_prediction_probability_up_count" in text
        assert 'fx_feature_age_seconds{instrument="USD_SGD"}' in text
        assert f'fx_model_info{{model="fx-usdsgd-predictor",version="{trained.version}"}} 1.0' in text
        assert "fx_model_loaded 1.0" in text


def test_no_model_yet_is_503(monkeypatch, redis_client, feast_store, feats, mlflow_uri):
    write_features(feast_store, feats, event_timestamp=datetime.now(timezone.utc))
    with make_client(monkeypatch) as c:
        end = time.time() + 20
        while c.app.state.models.last_check == 0 and time.time() < end:
            time.sleep(0.1)
        r = c.post("/predict", json={"instrument": "USD_SGD"})
        assert r.status_code == 503 and r.json()["dependency"] == "model", r.text
        detail = r.json()["detail"]
        assert detail.startswith("no model loaded: no champion model registered yet: MLflow at postgresql+psycopg://"
                                 "mlflow:***@127.0.0.1:"), detail
        assert os.environ["TEST_PG_MLFLOW_PASSWORD"] not in detail  # the backend store's password stays out
        assert "has no fx-usdsgd-predictor@champion (RESOURCE_DOES_NOT_EXIST)" in r.json()["detail"]
        h = c.get("/health").json()
        assert c.get("/health").status_code == 503 and h["model_loaded"] is False and h["redis"] is True
        assert h["model_state"] == "no_champion" and h["mlflow_reachable"] is True
        assert c.get("/livez").status_code == 200


def test_mlflow_unreachable_is_not_no_model(monkeypatch, redis_client, feast_store, feats):
    """A registry that does not answer is reported as such, not as 'no model registered yet'."""
    from liveserver import free_port

    write_features(feast_store, feats, event_timestamp=datetime.now(timezone.utc))
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with make_client(monkeypatch, MLFLOW_TRACKING_URI=uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES=0) as c:
        end = time.time() + 60
        while c.app.state.models.last_check == 0 and time.time() < end:
            time.sleep(0.1)
        r = c.post("/predict", json={"instrument": "USD_SGD"})
        assert r.status_code == 503 and r.json()["dependency"] == "mlflow", r.text
        assert r.json()["detail"].startswith(f"no model loaded: MLflow unreachable at {uri}: URLError")
        assert "no champion" not in r.json()["detail"]
        h = c.get("/health")
        assert h.status_code == 503
        assert h.json()["model_state"] == "mlflow_unreachable" and h.json()["mlflow_reachable"] is False


def test_missing_and_stale_features(monkeypatch, redis_client, feast_store, feats, trained):
    now = datetime(2026, 1, 14, 12, tzinfo=timezone.utc)  # a Wednesday: three hours on the clock are of trading
    with make_client(monkeypatch, clock=lambda: now, FEATURE_MAX_AGE_SECONDS=3600) as c:
        wait_loaded(c)
        r = c.post("/predict", json={"instrument": "USD_SGD"})
        assert r.status_code == 503 and "no online features for USD_SGD" in r.json()["detail"]
        assert r.json()["dependency"] == "features"
        write_features(feast_store, feats, event_timestamp=now - timedelta(hours=3))
        r = c.post("/predict", json={"instrument": "USD_SGD"})
        assert r.status_code == 503
        assert r.json()["detail"] == (
            "features for USD_SGD are stale: 10800s of trading time old (10800s on the clock; limit "
            "FEATURE_MAX_AGE_SECONDS=3600, closed weekends by New York time and on MARKET_HOLIDAYS), "
            "last at 2026-01-14T09:00:00+00:00")
        reader = c.app.state.reader
        redis_client.hset(reader.key("USD_SGD"), reader._fields[0], b"\xff\xff\xff")  # not a ValueProto
        r = c.post("/predict", json={"instrument": "USD_SGD"})
        assert r.status_code == 503 and r.json()["dependency"] == "features", r.text
        assert r.json()["detail"].startswith("online row for USD_SGD has an unreadable ")


def raw(body: bytes, ctype: str = "application/json") -> dict:
    return {"content": body, "headers": {"content-type": ctype}}


def test_bad_requests_get_clear_4xx(monkeypatch, redis_client, feast_store, trained):
    with make_client(monkeypatch, INSTRUMENTS="USD_SGD,EUR_USD", MAX_REQUEST_BYTES=1024) as c:
        wait_loaded(c)
        pattern = "instrument: String should match pattern '^[A-Za-z]{3}_[A-Za-z]{3}$'"
        cases = [
            ({"json": {"instrument": "GBP_USD"}}, 404, "'GBP_USD' is not served; served instruments: USD_SGD, EUR_USD"),
            ({"json": {"instrument": "USDSGD"}}, 422, pattern),
            ({"json": {"instrument": "US$_SGD"}}, 422, pattern),
            ({"json": {"instrument": "USD_SGD\n"}}, 422, pattern),
            ({"json": {}}, 422, "instrument: Field required"),
            ({"json": {"instrument": "USD_SGD", "extra": 1}}, 422, "extra: Extra inputs are not permitted"),
            ({"json": {"instrument": 5}}, 422, "instrument: Input should be a valid string"),
            ({"json": {"instrument": None}}, 422, "instrument: Input should be a valid string"),
            ({"json": {"instrument": ["USD_SGD"]}}, 422, "instrument: Input should be a valid string"),
            ({"json": ["USD_SGD"]}, 422, "body: Input should be a valid dictionary"),
            ({"json": "USD_SGD"}, 422, "body: Input should be a valid dictionary"),
            (raw(b"{not json"), 422, "request body is not valid JSON: Expecting property name"),
            (raw(b'{"instrument": NaN}'), 422, "NaN is not a JSON number"),
            (raw(b'{"instrument": "USD_SGD", "x": Infinity}'), 422, "Infinity is not a JSON number"),
            (raw(b'{"instrument": "\\ud800SD_SGD"}'), 422, "instrument: a string holds a lone UTF-16 surrogate \\ud800"),
            (raw(b'{"\\udc00": "USD_SGD"}'), 422, "a key holds a lone UTF-16 surrogate \\udc00"),
            (raw(b'{"instrument": ' + b"[" * 33 + b"]" * 33 + b"}"), 422, "nested more than 32 levels deep"),
            (raw(b"[" * 1000), 422, "nested more than 32 levels deep"),
            (raw(b'{"instrument": "\xc3\x28"}'), 422, "request body is not UTF-8 text"),
            (raw(b'{"instrument": "USD_SGD"}', "text/plain"), 415, "send Content-Type: application/json (got text/plain)"),
            ({"content": b'{"instrument": "USD_SGD"}'}, 415, "(got none)"),
            (raw(b'{"instrument": "' + b"A" * 2000 + b'"}'), 413, "over the 1024-byte limit (MAX_REQUEST_BYTES)"),
        ]
        for kwargs, status, needle in cases:
            r = c.post("/predict", **kwargs)
            assert r.status_code == status, (kwargs, r.text)
            assert needle in r.json()["detail"], (kwargs, r.text)
            if status == 422:
                assert r.json()["errors"] and all({"loc", "msg", "type"} <= set(e) for e in r.json()["errors"])
        # lower case is the same instrument
        assert c.post("/predict", json={"instrument": "usd_sgd"}).status_code != 422
        r = c.get("/predict")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        assert r.json()["detail"] == "method GET not allowed on /predict; allowed: POST"
        for path in ("/health", "/metrics", "/livez"):
            r = c.post(path)
            assert r.status_code == 405 and r.headers["allow"] == "GET" and "not allowed" in r.json()["detail"], path
        assert c.request("PROPFIND", "/predict").status_code == 405
        r = c.get("/nope")
        assert r.status_code == 404 and "no such endpoint /nope; try POST /predict" in r.json()["detail"]
        r = c.get("/" + "x" * 5000)
        assert r.status_code == 404 and len(r.json()["detail"]) < 400  # the path is not echoed whole
        # EUR_USD is served but has no features: 503 naming what is missing, not 500
        r = c.post("/predict", json={"instrument": "EUR_USD"})
        assert r.status_code == 503 and r.json()["dependency"] == "features"
        text = c.get("/metrics").text
        assert 'endpoint="other"' in text
        assert 'fx_inference_requests_total{endpoint="/predict",method="POST",status="413"} 1.0' in text


def test_openapi_declares_every_status_with_its_body(monkeypatch):
    from app.main import create_app

    doc = create_app().openapi()

    def ref(op, code):
        return op["responses"][code]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]

    predict = doc["paths"]["/predict"]["post"]
    assert {c: ref(predict, c) for c in predict["responses"]} == {
        "200": "PredictResponse", "404": "ErrorBody", "413": "ErrorBody", "415": "ErrorBody",
        "422": "ValidationErrorBody", "503": "UnavailableBody"}
    assert predict["responses"]["503"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert doc["components"]["schemas"]["UnavailableBody"]["required"] == ["detail", "dependency"]
    health = doc["paths"]["/health"]["get"]
    assert ref(health, "200") == "HealthBody" and ref(health, "503") == "HealthBody"
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=1.0.0; charset=utf-8"]
    assert set(doc["paths"]) == {"/predict", "/health", "/livez", "/metrics"}


def test_redis_down_is_503(monkeypatch, mlflow_uri, feats, trained, redis_client):
    with make_client(monkeypatch, REDIS_PORT=1, REQUEST_DEADLINE_SECONDS=0.2) as c:
        wait_loaded(c)
        r = c.post("/predict", json={"instrument": "USD_SGD"})
        assert r.status_code == 503 and r.json()["dependency"] == "redis"
        assert r.json()["detail"].startswith("online feature store (Redis at 127.0.0.1:1) unavailable: ConnectionError")
        assert r.headers["retry-after"] == "1"
        h = c.get("/health")
        assert h.status_code == 503 and h.json()["redis"] is False
        assert "failing fast" in h.json()["redis_error"]


def test_reloads_newly_promoted_version(monkeypatch, redis_client, feast_store, feats, mlflow_uri):
    weak = train(mlflow_uri, feats, n_estimators=1, learning_rate=0.001, max_depth=1)
    write_features(feast_store, feats, event_timestamp=datetime.now(timezone.utc))
    with make_client(monkeypatch, MODEL_RELOAD_SECONDS=0.2) as c:
        wait_loaded(c)
        assert c.post("/predict", json={"instrument": "USD_SGD"}).json()["model_version"] == weak.version
        from mlflow import MlflowClient

        strong = train(mlflow_uri, feats, n_estimators=40)
        if not strong.promoted:  # sample data is noisy: promote by hand, the service must follow the alias
            MlflowClient(mlflow_uri, mlflow_uri).set_registered_model_alias("fx-usdsgd-predictor", "champion", strong.version)
        deadline = time.time() + 20
        while time.time() < deadline:
            v = c.post("/predict", json={"instrument": "USD_SGD"}).json()["model_version"]
            if v == strong.version:
                break
            time.sleep(0.2)
        assert v == strong.version
        text = c.get("/metrics").text
        assert f'fx_model_info{{model="fx-usdsgd-predictor",version="{weak.version}"}} 0.0' in text
