"""The real image command: gunicorn + 2 uvicorn workers, Prometheus multiprocess aggregation across workers."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from api_helpers import sample_features, train, write_features

SERVICE = Path(__file__).resolve().parents[2] / "fastapi_service"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_workers_share_metrics(tmp_path, redis_client, feast_store, mlflow_uri):
    feats = sample_features()
    trained = train(mlflow_uri, feats, n_estimators=20)
    write_features(feast_store, feats, event_timestamp=datetime.now(timezone.utc))
    port = free_port()
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "INSTRUMENTS": "USD_SGD",
           "PYTHONPATH": str(SERVICE)}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen([str(gunicorn), "-c", str(SERVICE / "gunicorn.conf.py"), "app.main:app"],
                            cwd=SERVICE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        # Each worker loads the model on its own. A keep-alive connection sticks to one worker, so readiness is
        # probed over fresh connections until ten in a row answer 200: both workers are then ready.
        deadline, streak = time.time() + 90, 0
        while time.time() < deadline and streak < 10:
            try:
                streak = streak + 1 if httpx.get(f"{base}/health", timeout=1).status_code == 200 else 0
            except httpx.HTTPError:
                streak = 0
            time.sleep(0.1 if streak else 0.3)
        if streak < 10:
            raise AssertionError("gunicorn's workers never all became healthy")
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
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert b"Booting worker" in out
