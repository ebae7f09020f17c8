"""fx-fastapi as the image runs it (gunicorn + uvicorn workers), against a given Redis and MLflow registry
(importable: conftest puts this folder on sys.path)."""

import os
import sys
from pathlib import Path

from liveserver import LiveServer, free_port

SERVICE = Path(__file__).resolve().parents[2] / "fastapi_service"


def start_gunicorn(tmp_path, *, workers=2, **env) -> LiveServer:
    port = free_port()
    full = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "INSTRUMENTS": "USD_SGD", "PYTHONPATH": str(SERVICE),
            **{k: str(v) for k, v in env.items()}}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return LiveServer([str(gunicorn), "-c", str(SERVICE / "gunicorn.conf.py"), "app.main:app"], env=full,
                      cwd=SERVICE, port=port, name="fx-fastapi")
