"""The fx-mlflow image's server: starts with the pinned MLflow, answers /health, exposes Prometheus metrics,
and serves the model registry our pipeline uses (alias lookups over HTTP)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from liveserver import free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory, pg_database):
    d = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    # Backend store on the real Postgres, in MLFLOW_BACKEND_STORE_URI as the stack's mlflow component passes it (the
    # password stays out of argv), with the image's driver named: SQLAlchemy 2.1's plain postgresql:// means psycopg 3,
    # which the image does not install.
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": pg_database("mlflow").url("psycopg2")}
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--serve-artifacts",
         "--artifacts-destination", str(d / "artifacts"), "--expose-prometheus", str(d / "prom"),
         "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # schema migrations on Postgres: generous for a busy 2-core machine
    while time.time() < deadline:
        try:
            if requests.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode()[-3000:])
        time.sleep(0.5)
    else:
        proc.kill()
        raise AssertionError("mlflow server did not become healthy")
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def test_health_and_metrics(server):
    assert requests.get(f"{server}/health", timeout=5).text.strip() == "OK"
    r = requests.get(f"{server}/metrics", timeout=5)
    assert r.status_code == 200 and "mlflow_exporter_info" in r.text  # --expose-prometheus is wired


def test_registry_alias_round_trip(server):
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=server, registry_uri=server)
    c.create_registered_model("fx-usdsgd-predictor")
    exp = c.create_experiment("t")
    run = c.create_run(exp)
    mv = c.create_model_version("fx-usdsgd-predictor", f"runs:/{run.info.run_id}/model", run.info.run_id)
    c.set_registered_model_alias("fx-usdsgd-predictor", "champion", mv.version)
    assert str(c.get_model_version_by_alias("fx-usdsgd-predictor", "champion").version) == str(mv.version)


APP = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("how", ["logged-model", "run-artifacts"])
def test_the_serving_images_registry_reader_against_the_server(server, tmp_path, how):
    """fx-fastapi reads the registry with app/registry.py (standard library, no MLflow client in its image): the
    alias, the version's download URI and its files through --serve-artifacts, as the real server answers them, for
    a version registered from a logged model (MLflow 3's log_model, what training does) and from run artifacts."""
    sys.path.insert(0, str(APP / "fastapi_service"))
    from app.model import _is_not_found
    from app.registry import ModelVersion, RegistryClient, RegistryError
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=server, registry_uri=server)
    name = f"reader-{how}"
    files = tmp_path / "model"
    files.mkdir()
    (files / "MLmodel").write_text("flavors:\n  xgboost:\n    data: model.ubj\n")
    (files / "model.ubj").write_bytes(b"\x00\x01not really a model")
    exp = c.create_experiment(name)
    run = c.create_run(exp)
    c.create_registered_model(name)
    if how == "logged-model":
        lm = c.create_logged_model(experiment_id=exp, name="model", source_run_id=run.info.run_id)
        c.log_model_artifacts(lm.model_id, str(files))
        mv = c.create_model_version(name, f"models:/{lm.model_id}", run.info.run_id, tags={"features": "a,b"},
                                    model_id=lm.model_id)
    else:
        c.log_artifacts(run.info.run_id, str(files), "model")
        mv = c.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id, tags={"features": "a,b"})
    c.set_registered_model_alias(name, "champion", mv.version)

    reader = RegistryClient(server)
    assert reader.version_by_alias(name, "champion") == ModelVersion(name, str(mv.version), {"features": "a,b"})
    uri = reader.download_uri(name, str(mv.version))
    assert reader.artifact(uri, "MLmodel") == (files / "MLmodel").read_bytes()
    assert reader.artifact(uri, "model.ubj") == b"\x00\x01not really a model"
    for model, alias in ((name, "no-such-alias"), ("no-such-model", "champion")):
        with pytest.raises(RegistryError) as err:
            reader.version_by_alias(model, alias)
        assert _is_not_found(err.value), (model, alias, err.value.error_code, str(err.value))
