"""Hourly: collect H1 candles -> build features -> materialize to the Feast online store -> release training data.

Data-aware scheduling: materialize updates the asset ``fx_market_features_h1``; the last task updates
``fx_training_data`` once a UTC day (and on the very first run), which schedules ``fx_daily_training``. A run whose
source fails (OANDA down, token rejected) fails at collect: nothing downstream runs, no asset event, no training.

Airflow 3: SLAs were removed in 3.0; the run-level deadline below (DeadlineAlert) is their replacement.
No work at import time: every task imports fx_pipeline inside its body.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from fx_pipeline.assets import MARKET_FEATURES, TRAINING_DATA

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

    @task(task_display_name="materialize to Feast online store", outlets=[MARKET_FEATURES])
    def materialize(_built: dict) -> dict:
        from fx_pipeline.tasks import materialize_online

        return materialize_online()

    # Skipped (so no asset event) when today's training data was already released: training runs once a day.
    @task(task_display_name="release training data", inlets=[TRAINING_DATA], outlets=[TRAINING_DATA])
    def release_training_data(_materialized: dict, *, inlet_events=None) -> dict:
        from datetime import datetime, timezone

        from airflow.sdk.exceptions import AirflowSkipException

        from fx_pipeline.assets import training_due

        now = datetime.now(timezone.utc)
        latest = list(inlet_events[TRAINING_DATA].ascending(False).limit(1))
        last = latest[0].timestamp if latest else None
        if not training_due(last, now):
            raise AirflowSkipException(f"training data for {now.date()} already released at {last.isoformat()}")
        return {"released": now.isoformat(), "previous": last.isoformat() if last else None}

    collected = collect.expand(instrument=INSTRUMENTS)
    release_training_data(materialize(build_features(collected)))


fx_market_pipeline()
