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
# Emptied when gunicorn reads this file, before the preloaded app's import creates the master's own samples: stale
# files from a previous master would double-count.
shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def when_ready(server):
    # The master imported the app (preload_app) and so holds live-gauge samples of its own (fx_model_loaded = 0); it
    # serves nothing, and a live pid's samples would count in livemin/livemax: drop them before the workers start.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
