"""Daily: train the next-hour direction model per instrument, register it in MLflow, promote if better.

Airflow 3 has no SLAs; the DeadlineAlert below fires if a run is not done 3 hours after it was queued.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

INSTRUMENTS = [i.strip().upper() for i in os.environ.get("INSTRUMENTS", "USD_SGD").split(",") if i.strip()]


@dag(
    dag_id="fx_daily_training",
    schedule="30 0 * * *",
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
    @task(task_display_name="refresh features")
    def refresh() -> dict:
        from fx_pipeline.tasks import build_feature_table

        return build_feature_table()

    @task(task_display_name="train, register, promote")
    def train(instrument: str, _features: dict) -> dict:
        from fx_pipeline.tasks import train_model

        return train_model(instrument)

    feats = refresh()
    train.partial(_features=feats).expand(instrument=INSTRUMENTS)


fx_daily_training()
