"""gunicorn settings for fx-fastapi: `gunicorn -c /app/gunicorn.conf.py app.main:app`."""

import os
import shutil

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
# Import the app once, in the master, before forking: workers start without importing (start to Ready measured
# by bench/predict_bench.py) and share the imported modules' pages (PSS per worker). Redis pools, the model and
# its reload loop are made per worker, in the app's lifespan, after the fork.
preload_app = True
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG", "0") == "1" else None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")

# Prometheus multiprocess mode: workers write samples here; /metrics aggregates across workers.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/fx-prometheus")


def on_starting(server):
    d = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(d, ignore_errors=True)  # stale files from a previous master would double-count
    os.makedirs(d, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
