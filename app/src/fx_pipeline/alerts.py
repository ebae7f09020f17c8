"""Callbacks the DAGs reference by import path (run on the Airflow worker)."""

import logging

log = logging.getLogger("fx_pipeline.alerts")


def deadline_missed(**context) -> None:
    """Airflow 3 DeadlineAlert callback (replaces the SLA miss callback that Airflow 3 removed)."""
    dag_run = context.get("dag_run")
    log.error("deadline missed: dag=%s run=%s", getattr(dag_run, "dag_id", context.get("dag_id")),
              getattr(dag_run, "run_id", None))
