import shutil
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(APP / "fastapi_service"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def redis_client(redis_env):
    """The shared real-Redis fixture (tests/conftest.py), under the name these tests use."""
    return redis_env


@pytest.fixture
def feast_store(tmp_path, redis_client, feast_registry_env):
    """Feast store over the real repo definitions, its SQL registry on the real Postgres; writes go to the real Redis."""
    from fx_pipeline import feast_store as fs

    repo = tmp_path / "feast_repo"
    shutil.copytree(APP / "feast_repo", repo)
    store = fs.load_store(repo)
    fs.apply(store, repo)
    return store


@pytest.fixture
def mlflow_uri(monkeypatch, mlflow_db_uri):
    uri = mlflow_db_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MODEL_NAME", "fx-usdsgd-predictor")
    monkeypatch.setenv("MODEL_ALIAS", "champion")
    return uri