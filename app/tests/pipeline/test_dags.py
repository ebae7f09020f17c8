"""DAGs load in a DagBag without import errors, call into fx_pipeline, and do no work at import time; run for real,
the features DAG's success is the asset event that schedules training."""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
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
    from airflow.sdk import Asset

    dag = dagbag.dags["fx_market_pipeline"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "collect", "build_features", "materialize", "release_training_data"]
    for t in dag.tasks:
        assert t.retries == 3 and t.execution_timeout == timedelta(minutes=20)
    assert dag.max_active_runs == 1 and not dag.catchup
    assert dag.schedule == "5 * * * *"
    (alert,) = dag.deadline
    assert alert.interval == timedelta(minutes=45)
    features = Asset(name="fx_market_features_h1", uri="fx://feast/fx_market_features_h1", group="fx")
    training_data = Asset(name="fx_training_data", uri="fx://feast/fx_market_features_h1/daily", group="fx")
    assert dag.get_task("materialize").outlets == [features]
    release = dag.get_task("release_training_data")
    assert release.inlets == [training_data] and release.outlets == [training_data]
    assert all(dag.get_task(t).outlets == [] for t in ("collect", "build_features"))


def test_training_is_scheduled_on_the_training_data_asset(dagbag):
    from airflow.sdk import Asset, AssetAll
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

    dag = dagbag.dags["fx_daily_training"]
    assert {t.task_id for t in dag.tasks} == {"train"}
    assert all(t.retries == 2 for t in dag.tasks)
    assert dag.deadline
    assert isinstance(dag.timetable, AssetTriggeredTimetable)
    training_data = Asset(name="fx_training_data", uri="fx://feast/fx_market_features_h1/daily", group="fx")
    assert dag.schedule == [training_data]
    assert dag.timetable.asset_condition == AssetAll(training_data)
    assert dag.max_active_runs == 1 and not dag.catchup


@pytest.mark.parametrize(("last", "now", "due"), [
    (None, datetime(2026, 3, 4, 10, 5, tzinfo=timezone.utc), True),  # a fresh stack: never released
    (datetime(2026, 3, 4, 0, 6, tzinfo=timezone.utc), datetime(2026, 3, 4, 23, 5, tzinfo=timezone.utc), False),
    (datetime(2026, 3, 3, 23, 6, tzinfo=timezone.utc), datetime(2026, 3, 4, 0, 5, tzinfo=timezone.utc), True),
    # an aware time in another zone is compared by its UTC day: 20:00 in New York on the 3rd is the 4th in UTC
    (datetime(2026, 3, 4, 1, 0, tzinfo=timezone(timedelta(hours=-5))),
     datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc), False),
])
def test_training_due_once_per_utc_day(last, now, due):
    from fx_pipeline.assets import training_due

    assert training_due(last, now) is due


def test_no_top_level_work():
    code = (
        "import sys, runpy\n"
        f"for f in ['fx_market_pipeline.py', 'fx_daily_training.py']: runpy.run_path('{DAGS}/' + f)\n"
        "allowed = {'fx_pipeline', 'fx_pipeline.alerts', 'fx_pipeline.assets'}  # callback path, the Assets\n"
        "bad = [m for m in sys.modules if m.startswith(('fx_pipeline', 'feast', 'xgboost', 'mlflow')) and m not in allowed]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_task_bodies_run_the_pipeline(dagbag, pipeline_env, redis_env):
    """Call each task's own callable in order: candles -> feature table -> online store -> training. The tasks open
    Feast as deployed (feature_store.yaml's SQL registry and offline store on the real Postgres) and train into MLflow's
    Postgres backend store."""
    dag = dagbag.dags["fx_market_pipeline"]
    collected = dag.get_task("collect").python_callable("USD_SGD")
    assert collected["stored"] > 500
    built = dag.get_task("build_features").python_callable([collected])
    assert built["rows"] > 400
    out = dag.get_task("materialize").python_callable(built)
    assert out["instruments"] == ["USD_SGD"]
    assert redis_env.dbsize() == 1
    train_dag = dagbag.dags["fx_daily_training"]
    res = train_dag.get_task("train").python_callable("USD_SGD")
    assert res["version"] == "1" and res["promoted"]


def test_fresh_stack_first_features_run_schedules_training(pipeline_env, redis_env, tmp_path, run_dags):
    """dag.test() of the features DAG on empty databases (sample source): its success is the asset event that queues
    fx_daily_training, whose run then trains and promotes the first champion; a second features run the same UTC day
    refreshes the features but releases no second training."""
    out = run_dags("fresh-stack", tmp_path)
    assert out["first"] == {"state": "success", "tasks": {
        "collect": "success", "build_features": "success", "materialize": "success",
        "release_training_data": "success"}}
    assert out["after_first"] == {"market_features_events": 1, "training_data_events": 1, "queued_for_training": 1,
                                  "dags_needing_runs": ["fx_daily_training"]}
    assert out["training"] == {"state": "success", "tasks": {"train": "success"}}
    assert out["second"] == {"state": "success", "tasks": {
        "collect": "success", "build_features": "success", "materialize": "success",
        "release_training_data": "skipped"}}
    assert out["after_second"] == {"market_features_events": 2, "training_data_events": 1}

    from mlflow import MlflowClient

    champion = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_model_version_by_alias(
        "fx-usdsgd-predictor", "champion")
    assert str(champion.version) == "1"
