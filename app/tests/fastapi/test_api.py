"""fx-fastapi against a real Redis populated by Feast's write path and a real MLflow (sqlite) registry."""

import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api_helpers import sample_features, train, write_features


def make_client(monkeypatch, **env):
    monkeypatch.setenv("INSTRUMENTS", env.pop("INSTRUMENTS", "USD_SGD"))
    monkeypatch.setenv("MODEL_RELOAD_SECONDS", str(env.pop("MODEL_RELOAD_SECONDS", 3600)))
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    from app.main import create_app

    return TestClient(create_app())


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
        assert h.json() == {"status": "ok", "redis": True, "model_loaded": True,
                            "model_name": "fx-usdsgd-predictor", "model_version": trained.version}
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
        assert r.status_code == 503
        assert "no model loaded" in r.json()["detail"] and "fx-usdsgd-predictor@champion" in r.json()["detail"]
        h = c.get("/health")
        assert h.status_code == 503 and h.json()["model_loaded"] is False and h.json()["redis"] is True
        assert c.get("/livez").status_code == 200


def test_missing_and_stale_features(monkeypatch, redis_client, feast_store, feats, trained):
    with make_client(monkeypatch, FEATURE_MAX_AGE_SECONDS=3600) as c:
        wait_loaded(c)
        r = c.post("/predict", json={"instrument": "USD_SGD"})
        assert r.status_code == 503 and "no online features for USD_SGD" in r.json()["detail"]
        write_features(feast_store, feats, event_timestamp=datetime.now(timezone.utc) - timedelta(hours=3))
        r = c.post("/predict", json={"instrument": "USD_SGD"})
        assert r.status_code == 503
        assert "stale" in r.json()["detail"] and "FEATURE_MAX_AGE_SECONDS=3600" in r.json()["detail"]


def test_bad_requests_get_clear_4xx(monkeypatch, redis_client, feast_store, trained):
    with make_client(monkeypatch, INSTRUMENTS="USD_SGD,EUR_USD") as c:
        wait_loaded(c)
        cases = [
            ({"json": {"instrument": "GBP_USD"}}, 404, "'GBP_USD' is not served; served instruments: USD_SGD, EUR_USD"),
            ({"json": {"instrument": "USDSGD"}}, 422, "instrument"),
            ({"json": {"instrument": "US$_SGD"}}, 422, "must look like USD_SGD"),
            ({"json": {}}, 422, "instrument: Field required"),
            ({"json": {"instrument": "USD_SGD", "extra": 1}}, 422, "extra: Extra inputs are not permitted"),
            ({"json": {"instrument": 5}}, 422, "instrument"),
            ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
            ({"json": ["USD_SGD"]}, 422, "body"),
        ]
        for kwargs, status, needle in cases:
            r = c.post("/predict", **kwargs)
            assert r.status_code == status, (kwargs, r.text)
            assert needle in r.json()["detail"], (kwargs, r.text)
        assert c.get("/predict").status_code == 405
        assert "GET not allowed on /predict" in c.get("/predict").json()["detail"]
        for path in ("/health", "/metrics", "/livez"):
            r = c.post(path)
            assert r.status_code == 405 and "not allowed" in r.json()["detail"], path
        r = c.get("/nope")
        assert r.status_code == 404 and "no such endpoint /nope" in r.json()["detail"]
        # EUR_USD is served but has no features: 503, not 500
        r = c.post("/predict", json={"instrument": "EUR_USD"})
        assert r.status_code == 503
        assert 'endpoint="other"' in c.get("/metrics").text


def test_redis_down_is_503(monkeypatch, mlflow_uri, feats, trained, redis_client):
    with make_client(monkeypatch, REDIS_PORT=1, REDIS_TIMEOUT_SECONDS=0.2) as c:
        wait_loaded(c)
        r = c.post("/predict", json={"instrument": "USD_SGD"})
        assert r.status_code == 503 and "Redis" in r.json()["detail"]
        h = c.get("/health")
        assert h.status_code == 503 and h.json()["redis"] is False


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
