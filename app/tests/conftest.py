"""Fixtures every suite may use (each suite still runs in its own venv, scripts/test-python.sh)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # liveserver.py


@pytest.fixture
def redis_env(monkeypatch):
    """The real redis-server started by scripts/test-python.sh (TEST_REDIS_PORT), flushed, and the online-store env
    (REDIS_HOST/PORT, FEAST_REDIS_DB 0, no password) pointing at it."""
    import redis

    host = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
    port = os.environ.get("TEST_REDIS_PORT")
    if not port:
        pytest.fail("TEST_REDIS_PORT is not set: run via scripts/test-python.sh (it starts redis-server)")
    client = redis.Redis(host=host, port=int(port), db=0)
    client.flushdb()
    monkeypatch.setenv("REDIS_HOST", host)
    monkeypatch.setenv("REDIS_PORT", port)
    monkeypatch.setenv("FEAST_REDIS_DB", "0")
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    yield client
    client.flushdb()
    client.close()
