import shutil
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2]


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
