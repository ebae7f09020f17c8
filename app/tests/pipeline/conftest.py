import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2]
DAGS = APP / "airflow" / "dags"
RUN_DAGS = Path(__file__).resolve().parent / "run_dags.py"


@pytest.fixture
def pipeline_env(tmp_path, monkeypatch, redis_env, feast_registry_env, mlflow_db_uri):
    repo = tmp_path / "feast_repo"
    shutil.copytree(APP / "feast_repo", repo)
    monkeypatch.setenv("FEAST_REPO_PATH", str(repo))
    monkeypatch.setenv("FX_DATA_SOURCE", "sample")
    monkeypatch.setenv("FX_HISTORY_HOURS", "1500")
    monkeypatch.setenv("INSTRUMENTS", "USD_SGD")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_db_uri)
    return tmp_path


@pytest.fixture
def pg_store(pipeline_env):
    """The Feast store of the copied repo: SQL registry on the real Postgres (FEAST_DB_*), online store on Redis."""
    from fx_pipeline import feast_store

    return feast_store.load_store(pipeline_env / "feast_repo")


@pytest.fixture
def run_dags():
    """``run_dags(mode, tmp_path, **env)``: run_dags.py in a subprocess (a fresh sqlite Airflow metadata database, the
    DAGs folder of this checkout, this process's environment plus ``env``); its JSON result plus ``log``, the output."""
    return _run_dags


def _run_dags(mode: str, tmp_path: Path, **env: str) -> dict:
    home = tmp_path / "airflow_home"
    home.mkdir()
    full_env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # as the stack sets it (components/apps/airflow.ts): an asset event queues only DAGs that are not paused
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        **env,
    }
    r = subprocess.run([sys.executable, str(RUN_DAGS), mode], capture_output=True, text=True, timeout=600,
                       env=full_env, cwd=tmp_path)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, (r.stdout[-3000:], r.stderr[-5000:])
    return json.loads(lines[-1][len("RESULT "):]) | {"log": r.stdout + r.stderr}
