import os
import shutil
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(APP / "fastapi_service"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def redis_client(monkeypatch):
    import redis

    port = os.environ.get("TEST_REDIS_PORT")
    if not port:
        pytest.fail("TEST_REDIS_PORT is not set: run via scripts/test-python.sh (it starts redis-server)")
    c = redis.Redis(host="127.0.0.1", port=int(port), db=0)
    c.flushdb()
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", port)
    monkeypatch.setenv("FEAST_REDIS_DB", "0")
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    yield c
    c.flushdb()
    c.close()


@pytest.fixture
def feast_store(tmp_path, redis_client):
    """Feast store over the real repo definitions with a sqlite registry; writes go to the real Redis."""
    from fx_pipeline import feast_store as fs

    repo = tmp_path / "feast_repo"
    shutil.copytree(APP / "feast_repo", repo)
    store = fs.load_store(repo, registry_path=f"sqlite:///{tmp_path}/registry.db")
    fs.apply(store, repo)
    return store


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MODEL_NAME", "fx-usdsgd-predictor")
    monkeypatch.setenv("MODEL_ALIAS", "champion")
    return uri