"""Hourly: collect H1 candles -> build features -> materialize to the Feast online store.

Airflow 3: SLAs were removed in 3.0; the run-level deadline below (DeadlineAlert) is their replacement.
No work at import time: every task imports fx_pipeline inside its body.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

INSTRUMENTS = [i.strip().upper() for i in os.environ.get("INSTRUMENTS", "USD_SGD").split(",") if i.strip()]

DEFAULT_ARGS = {
    "owner": "fx",
    "retries": 3,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(minutes=20),
}


@dag(
    dag_id="fx_market_pipeline",
    schedule="5 * * * *",  # five past each hour: the previous H1 candle is complete by then
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["fx", "features"],
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=45),
        callback=SyncCallback("fx_pipeline.alerts.deadline_missed"),
    ),
    doc_md=__doc__,
)
def fx_market_pipeline():
    @task(task_display_name="collect candles")
    def collect(instrument: str) -> dict:
        from fx_pipeline.tasks import collect_candles

        return collect_candles(instrument)

    @task(task_display_name="build features")
    def build_features(_collected: list[dict]) -> dict:
        from fx_pipeline.tasks import build_feature_table

        return build_feature_table()

    @task(task_display_name="materialize to Feast online store")
    def materialize(_built: dict) -> dict:
        from fx_pipeline.tasks import materialize_online

        return materialize_online()

    collected = collect.expand(instrument=INSTRUMENTS)
    materialize(build_features(collected))


fx_market_pipeline()
