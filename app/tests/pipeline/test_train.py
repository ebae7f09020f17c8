import numpy as np
import pandas as pd
import pytest

from fx_pipeline.features import FEATURE_COLUMNS, TARGET
from fx_pipeline.train import time_split, train_and_register


def signal_frame(n=1200, seed=0):
    """Features where the label follows ret_1h: a real model beats a crippled one clearly."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.standard_normal((n, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    df["instrument"] = "USD_SGD"
    df["event_timestamp"] = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    df[TARGET] = (df["ret_1h"] + 0.3 * rng.standard_normal(n) > 0).astype(float)
    return df.sample(frac=1.0, random_state=1)  # shuffled on purpose: the split must re-order by time


def test_time_split_is_ordered():
    train, valid, hold = time_split(signal_frame())
    assert train["event_timestamp"].max() < valid["event_timestamp"].min()
    assert valid["event_timestamp"].max() < hold["event_timestamp"].min()
    assert len(hold) == 180
    with pytest.raises(ValueError, match="at least 200"):
        time_split(signal_frame(150))


def test_register_and_promote_only_if_better(mlflow_db_uri):
    from mlflow import MlflowClient

    uri = mlflow_db_uri
    df = signal_frame()
    weak = train_and_register(df, model_name="fx-test", tracking_uri=uri,
                              params={"n_estimators": 2, "learning_rate": 0.01, "max_depth": 1})
    assert weak.promoted and weak.version == "1" and weak.champion_version is None
    strong = train_and_register(df, model_name="fx-test", tracking_uri=uri)
    assert strong.promoted and strong.champion_version == "1"
    assert strong.metrics["holdout_logloss"] < weak.metrics["holdout_logloss"]
    assert strong.metrics["holdout_auc"] > 0.85
    again = train_and_register(df, model_name="fx-test", tracking_uri=uri,
                               params={"n_estimators": 2, "learning_rate": 0.01, "max_depth": 1})
    assert not again.promoted and again.version == "3"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champ = c.get_model_version_by_alias("fx-test", "champion")
    assert str(champ.version) == "2"
    assert champ.tags["features"] == ",".join(FEATURE_COLUMNS)
    run = c.get_run(strong.run_id)
    assert run.data.metrics["champion_holdout_logloss"] == pytest.approx(weak.metrics["holdout_logloss"])
