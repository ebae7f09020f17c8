"""DAGs load in a DagBag without import errors, call into fx_pipeline, and do no work at import time."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "airflow" / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"fx_market_pipeline", "fx_daily_training"}


def test_market_pipeline_shape(dagbag):
    dag = dagbag.dags["fx_market_pipeline"]
    assert [t.task_id for t in dag.topological_sort()] == ["collect", "build_features", "materialize"]
    for t in dag.tasks:
        assert t.retries == 3 and t.execution_timeout == timedelta(minutes=20)
    assert dag.max_active_runs == 1 and not dag.catchup
    (alert,) = dag.deadline
    assert alert.interval == timedelta(minutes=45)


def test_training_shape(dagbag):
    dag = dagbag.dags["fx_daily_training"]
    assert {t.task_id for t in dag.tasks} == {"refresh", "train"}
    assert all(t.retries == 2 for t in dag.tasks)
    assert dag.deadline


def test_no_top_level_work():
    code = (
        "import sys, runpy\n"
        f"for f in ['fx_market_pipeline.py', 'fx_daily_training.py']: runpy.run_path('{DAGS}/' + f)\n"
        "allowed = {'fx_pipeline', 'fx_pipeline.alerts'}  # the deadline callback path is resolved at parse\n"
        "bad = [m for m in sys.modules if m.startswith(('fx_pipeline', 'feast', 'xgboost', 'mlflow')) and m not in allowed]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_task_bodies_run_the_pipeline(dagbag, pipeline_env, redis_env):
    """Call each task's own callable in order: bronze -> silver -> online store. The tasks open Feast as deployed
    (feature_store.yaml's SQL registry on the real Postgres) and train into MLflow's Postgres backend store."""
    dag = dagbag.dags["fx_market_pipeline"]
    collected = dag.get_task("collect").python_callable("USD_SGD")
    assert collected["stored"] > 500
    built = dag.get_task("build_features").python_callable([collected])
    assert built["rows"] > 400
    out = dag.get_task("materialize").python_callable(built)
    assert out["instruments"] == ["USD_SGD"]
    assert redis_env.dbsize() == 1
    train_dag = dagbag.dags["fx_daily_training"]
    res = train_dag.get_task("train").python_callable("USD_SGD", built)
    assert res["version"] == "1" and res["promoted"]
