"""Feast repo -> real Redis through Feast's own write path; the thin reader must agree with Feast."""

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fx_pipeline import datastore, feast_store, tasks
from fx_pipeline.config import PipelineSettings
from fx_pipeline.feature_defs import FEATURE_COLUMNS, FEATURE_VIEW
from fx_pipeline.online import FeatureRowIncomplete, OnlineFeatureReader

NOW = datetime(2025, 3, 7, 12, 10, tzinfo=timezone.utc)


def test_feature_store_yaml_uses_env(monkeypatch):
    app = Path(__file__).resolve().parents[2]
    for k, v in {"REDIS_HOST": "redis-master", "REDIS_PORT": "6379", "REDIS_PASSWORD": "s3cret",
                 "FEAST_REDIS_DB": "0", "FEAST_DB_HOST": "pg-rw", "FEAST_DB_PORT": "5432",
                 "FEAST_DB_NAME": "feast", "FEAST_DB_USER": "feast", "FEAST_DB_PASSWORD": "pw"}.items():
        monkeypatch.setenv(k, v)
    raw = feast_store.render_config(app / "feast_repo")
    assert raw["online_store"]["connection_string"] == "redis-master:6379,db=0,password=s3cret"
    assert raw["registry"]["registry_type"] == "sql"
    assert raw["registry"]["path"] == "postgresql+psycopg://feast:pw@pg-rw:5432/feast"
    text = (app / "feast_repo" / "feature_store.yaml").read_text()
    assert "${REDIS_HOST}" in text and "s3cret" not in text
    from feast.repo_config import RepoConfig

    assert RepoConfig(**raw).online_store.type == "redis"  # Feast accepts the rendered config
    monkeypatch.delenv("FEAST_DB_HOST")
    with pytest.raises(RuntimeError, match="FEAST_DB_HOST"):
        feast_store.render_config(app / "feast_repo")
    monkeypatch.delenv("REDIS_HOST")
    with pytest.raises(RuntimeError, match="REDIS_HOST"):
        feast_store.render_config(app / "feast_repo")


def test_materialize_then_read(pipeline_env, pg_store, redis_env):
    s = PipelineSettings()
    tasks.collect_candles("USD_SGD", s, now=NOW)
    built = tasks.build_feature_table(s)
    tasks.materialize_online(s, end=NOW, store=pg_store)
    assert redis_env.dbsize() == 1  # one hash for the one instrument

    reader = OnlineFeatureReader(redis_env)
    got = reader.read("USD_SGD")
    silver = datastore.read_features()
    newest = silver.sort_values("event_timestamp").iloc[-1]
    assert got.event_timestamp == newest["event_timestamp"].to_pydatetime() == pd.Timestamp(built["latest"])
    for f in FEATURE_COLUMNS:
        assert got.values[f] == pytest.approx(float(newest[f]), rel=1e-12), f

    feast_view = pg_store.get_online_features(
        features=[f"{FEATURE_VIEW}:{f}" for f in FEATURE_COLUMNS], entity_rows=[{"instrument": "USD_SGD"}]
    ).to_dict()
    for f in FEATURE_COLUMNS:
        assert feast_view[f][0] == pytest.approx(got.values[f], rel=1e-12), f
    assert reader.read("EUR_USD") is None


def test_write_online_path_and_incomplete_row(pipeline_env, pg_store, redis_env):
    s = PipelineSettings()
    tasks.collect_candles("USD_SGD", s, now=NOW)
    tasks.build_feature_table(s)
    feast_store.apply(pg_store, s.feast_repo_path)
    feats = datastore.read_features()
    assert feast_store.write_online(pg_store, feats) == 1
    reader = OnlineFeatureReader(redis_env)
    row = reader.read("USD_SGD")
    assert row.values["ret_1h"] == pytest.approx(feats.sort_values("event_timestamp")["ret_1h"].iloc[-1])
    # a hash that lost a field is reported, not silently zero-filled
    key = reader.key("USD_SGD")
    redis_env.hdel(key, reader._fields[0])
    with pytest.raises(FeatureRowIncomplete, match="ret_1h"):
        reader.read("USD_SGD")


def test_materialize_needs_features_first(pipeline_env, pg_store):
    with pytest.raises(LookupError, match="fx_market_features_h1 is empty: run build_features first"):
        tasks.materialize_online(PipelineSettings(), store=pg_store)
