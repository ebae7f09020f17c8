"""The worker image's command against a real Redis broker: `airflow celery worker` starts, and the liveness probe's
`celery inspect ping` (components/airflow.ts) gets its pong. Catches a Celery release the provider cannot import."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
BIN = Path(sys.executable).parent


@pytest.fixture
def airflow_celery_env(tmp_path, redis_env):
    port = os.environ["TEST_REDIS_PORT"]
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # As the stack sets them: broker on Redis logical db 1, results in the metadata database.
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{port}/1",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+sqlite:///{tmp_path}/results.db",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
    }
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def test_celery_worker_starts_and_answers_the_liveness_ping(airflow_celery_env, tmp_path):
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([str(BIN / "airflow"), "celery", "worker"], env=airflow_celery_env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ping = [str(BIN / "python"), "-m", "celery", "--app", CELERY_APP, "inspect", "ping",
            "-d", f"celery@{socket.gethostname()}"]
    try:
        deadline, answer = time.time() + 120, None
        while time.time() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            answer = subprocess.run(ping, env=airflow_celery_env, capture_output=True, text=True, timeout=60)
            if answer.returncode == 0:
                break
            time.sleep(2)
        assert answer is not None and answer.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]
        assert "pong" in answer.stdout
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, 15)
            worker.wait(timeout=60)
