"""The real image command: gunicorn + 2 uvicorn workers, Prometheus multiprocess aggregation across workers."""

import re
from datetime import datetime, timezone

import httpx

from api_helpers import sample_features, train, write_features
from servers import start_gunicorn


def test_gunicorn_workers_share_metrics(tmp_path, redis_client, feast_store, mlflow_uri):
    feats = sample_features()
    trained = train(mlflow_uri, feats, n_estimators=20)
    write_features(feast_store, feats, event_timestamp=datetime.now(timezone.utc))
    server = start_gunicorn(tmp_path, workers=2)
    base = server.base
    try:
        # Each worker loads the model on its own. A keep-alive connection sticks to one worker, so readiness is
        # probed over fresh connections until ten in a row answer 200: both workers are then ready.
        print(f"\ngunicorn with 2 workers ready {server.wait_ready('/health', streak=10):.1f}s after start")
        # One fresh connection per request, so gunicorn spreads them over both workers.
        ok = 0
        for _ in range(40):
            r = httpx.post(f"{base}/predict", json={"instrument": "USD_SGD"}, timeout=5)
            ok += r.status_code == 200
            assert r.status_code in (200, 503), r.text
        text = httpx.get(f"{base}/metrics").text
        total = sum(float(v) for v in re.findall(
            r'fx_inference_requests_total\{endpoint="/predict",method="POST",status="\d+"\} (\S+)', text))
        assert total == 40
        preds = sum(float(v) for v in re.findall(r"fx_predictions_total\{[^}]*\} (\S+)", text))
        assert preds == ok > 0
        assert len(list((tmp_path / "prom").glob("*.db"))) >= 2  # one file set per worker
        assert f'version="{trained.version}"' in text
        counters = [ln for ln in text.splitlines() if ln.startswith("fx_inference_requests_total{")]
        assert counters and not any("pid=" in ln for ln in counters)  # summed across workers
    finally:
        out = server.stop()
    assert "Booting worker" in out
