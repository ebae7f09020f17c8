"""Daily, when its data is ready: train the next-hour direction model per instrument, register it, promote if better.

Scheduled on the asset ``fx_training_data`` (data-aware scheduling), which fx_market_pipeline updates after it has
materialized the day's first features (and on a fresh stack's very first run): training never starts before the
feature table it reads exists, and a fresh stack's first champion needs no retry and no manual trigger.

Airflow 3 has no SLAs; the DeadlineAlert below fires if a run is not done 3 hours after it was queued.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from fx_pipeline.assets import TRAINING_DATA

INSTRUMENTS = [i.strip().upper() for i in os.environ.get("INSTRUMENTS", "USD_SGD").split(",") if i.strip()]


@dag(
    dag_id="fx_daily_training",
    schedule=[TRAINING_DATA],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "fx",
        "retries": 2,
        "retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(hours=1),
    },
    tags=["fx", "training"],
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=3),
        callback=SyncCallback("fx_pipeline.alerts.deadline_missed"),
    ),
    doc_md=__doc__,
)
def fx_daily_training():
    # Reads the feature table fx_market_pipeline wrote just before it released the asset event.
    @task(task_display_name="train, register, promote", inlets=[TRAINING_DATA])
    def train(instrument: str) -> dict:
        from fx_pipeline.tasks import train_model

        return train_model(instrument)

    train.expand(instrument=INSTRUMENTS)


fx_daily_training()
