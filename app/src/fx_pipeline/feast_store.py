"""Open the Feast store from feast_repo/ and write features through Feast's own write path."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from .feature_defs import FEATURE_COLUMNS, FEATURE_VIEW

log = logging.getLogger(__name__)

# Variables whose absence should not leave a literal "${VAR}" in the config.
ENV_DEFAULTS = {"REDIS_PASSWORD": "", "FEAST_REDIS_DB": "0", "REDIS_PORT": "6379", "FEAST_DB_PORT": "5432"}
REQUIRED_ENV = ["REDIS_HOST"]
# A ${VAR} reference in feature_store.yaml (Feast's own CLI substitutes them from the environment too).
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_config(repo_path: str | os.PathLike) -> dict:
    """feature_store.yaml with ${VAR}s substituted (defaults filled), as a dict."""
    env = {**ENV_DEFAULTS, **os.environ}
    missing = [v for v in REQUIRED_ENV if not env.get(v)]
    if missing:
        raise RuntimeError(f"Feast online store needs env {missing}")
    text = Path(repo_path, "feature_store.yaml").read_text()
    for key, value in env.items():
        text = text.replace("${" + key + "}", value)
    raw = yaml.safe_load(text)
    unresolved = sorted(env_references(raw))
    if unresolved:
        raise RuntimeError(f"feature_store.yaml still references unset env {unresolved}")
    return raw


def env_references(node) -> set[str]:
    """The names of the ${VAR}s in every string of a parsed YAML document."""
    return {name for text in _walk(node) for name in ENV_REFERENCE.findall(text)}


def _walk(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
    elif isinstance(node, str):
        yield node


def load_store(repo_path: str | os.PathLike | None = None):
    """A FeatureStore for ``repo_path`` (default ``$FEAST_REPO_PATH``), its SQL registry as feature_store.yaml says."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    repo = Path(repo_path or os.environ.get("FEAST_REPO_PATH", "/app/feast_repo"))
    raw = render_config(repo)
    config = RepoConfig(**raw)
    config.repo_path = repo
    return FeatureStore(config=config, repo_path=str(repo))


def repo_objects(repo_path: str | os.PathLike):
    """Import feast_repo/features.py and return its Feast objects (entity, feature view)."""
    from feast import Entity, FeatureView

    path = Path(repo_path, "features.py")
    spec = importlib.util.spec_from_file_location("fx_feast_repo_features", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return [v for v in vars(module).values() if isinstance(v, (Entity, FeatureView))]


def apply(store, repo_path: str | os.PathLike) -> None:
    """What `feast apply` does for this repo: register the entity and feature view (idempotent)."""
    store.apply(repo_objects(repo_path))


def materialize(store, end: datetime | None = None, start: datetime | None = None) -> None:
    """Load the offline (silver parquet) rows into the online store via Feast's materialization."""
    end = end or datetime.now(timezone.utc)
    if start is None:
        store.materialize_incremental(end_date=end, feature_views=[FEATURE_VIEW])
    else:
        store.materialize(start_date=start, end_date=end, feature_views=[FEATURE_VIEW])


def write_online(store, features: pd.DataFrame) -> int:
    """Write the newest row per instrument straight to the online store (Feast's write path)."""
    from .features import latest_rows

    latest = latest_rows(features)[["instrument", "event_timestamp", *FEATURE_COLUMNS]]
    store.write_to_online_store(FEATURE_VIEW, latest)
    return len(latest)
