"""Fixtures every suite may use (each suite still runs in its own venv, scripts/test-python.sh)."""

import importlib.util
import os
import sys
import uuid
from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True)
class PgDatabase:
    """A fresh database on the PostgreSQL server scripts/test-python.sh started, owned by one of its roles."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)  # kept out of assertion messages and logs
    name: str

    def url(self, driver: str | None = None) -> str:
        """SQLAlchemy URL; ``driver`` defaults to the psycopg this venv has (psycopg 3, else psycopg2)."""
        from sqlalchemy.engine import URL

        driver = driver or ("psycopg" if importlib.util.find_spec("psycopg") else "psycopg2")
        return URL.create(f"postgresql+{driver}", username=self.user, password=self.password, host=self.host,
                          port=self.port, database=self.name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database():
    """Factory: ``pg_database("feast" | "mlflow")`` creates an empty database owned by that role (the stack's database
    users) on the real Postgres of scripts/test-python.sh (TEST_PG_*); every one is dropped at the end of the session."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    host, port = os.environ.get("TEST_PG_HOST", "127.0.0.1"), os.environ.get("TEST_PG_PORT")
    if not port:
        pytest.fail("TEST_PG_PORT is not set: run via scripts/test-python.sh (it starts the PostgreSQL server)")
    created: list[PgDatabase] = []

    def admin(db: PgDatabase):
        return create_engine(replace(db, name="postgres").url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def make(role: str) -> PgDatabase:
        key = role.upper()
        user, password = os.environ.get(f"TEST_PG_{key}_USER"), os.environ.get(f"TEST_PG_{key}_PASSWORD")
        if not user or not password:
            pytest.fail(f"TEST_PG_{key}_USER/PASSWORD are not set: scripts/test-python.sh creates the {role} role")
        db = PgDatabase(host, int(port), user, password, f"{role}_{uuid.uuid4().hex[:12]}")
        with admin(db).connect() as c:
            c.execute(text(f'CREATE DATABASE "{db.name}"'))
        created.append(db)
        return db

    yield make
    for db in created:  # FORCE: engines the code under test left open (MLflow's pool) would block the drop
        with admin(db).connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)'))


@pytest.fixture
def feast_registry_env(monkeypatch, pg_database):
    """A fresh ``feast`` database and the FEAST_DB_* env feature_store.yaml's SQL registry reads, pointing at it."""
    db = pg_database("feast")
    for key, value in {"HOST": db.host, "PORT": str(db.port), "USER": db.user, "PASSWORD": db.password,
                       "NAME": db.name}.items():
        monkeypatch.setenv(f"FEAST_DB_{key}", value)
    return db


@pytest.fixture
def mlflow_db_uri(pg_database):
    """The SQLAlchemy URI of a fresh ``mlflow`` database: an MLflow backend store the code under test opens directly."""
    return pg_database("mlflow").url()
