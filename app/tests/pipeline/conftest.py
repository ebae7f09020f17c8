import shutil
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2]


@pytest.fixture
def pipeline_env(tmp_path, monkeypatch, redis_env):
    repo = tmp_path / "feast_repo"
    shutil.copytree(APP / "feast_repo", repo)
    monkeypatch.setenv("FEAST_REPO_PATH", str(repo))
    monkeypatch.setenv("FX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FX_DATA_SOURCE", "sample")
    monkeypatch.setenv("FX_HISTORY_HOURS", "1500")
    monkeypatch.setenv("INSTRUMENTS", "USD_SGD")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


@pytest.fixture
def sqlite_store(pipeline_env):
    from fx_pipeline import feast_store

    return feast_store.load_store(pipeline_env / "feast_repo", registry_path=f"sqlite:///{pipeline_env}/registry.db")
