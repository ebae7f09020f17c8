"""The Airflow Assets that chain the two DAGs (data-aware scheduling), and when training is due.

``fx_market_pipeline`` ends with two outlets: ``MARKET_FEATURES`` after every materialization (lineage: the feature
table and the online store were refreshed), and ``TRAINING_DATA`` when its gate task finds training due: on the first
successful features run of a UTC day, and on the first one ever (a fresh stack). ``fx_daily_training`` is scheduled on
``TRAINING_DATA``, so it runs after the data it reads exists, never before, and once a day. Imported by the DAG files
when they are parsed: only Airflow's SDK here, no pipeline code.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import Asset

MARKET_FEATURES = Asset(name="fx_market_features_h1", uri="fx://feast/fx_market_features_h1", group="fx")
TRAINING_DATA = Asset(name="fx_training_data", uri="fx://feast/fx_market_features_h1/daily", group="fx")


def training_due(last_release: datetime | None, now: datetime) -> bool:
    """True when no training data was released yet (a fresh stack) or the last release was on an earlier UTC day."""
    if last_release is None:
        return True
    return last_release.astimezone(timezone.utc).date() < now.astimezone(timezone.utc).date()
