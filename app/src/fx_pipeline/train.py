"""Train the next-hour direction classifier, log it to MLflow, register it, promote if better."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .features import FEATURE_COLUMNS, TARGET

log = logging.getLogger(__name__)

PROMOTION_METRIC = "holdout_logloss"  # lower is better


@dataclass
class TrainResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    champion_version: str | None
    champion_logloss: float | None
    promoted: bool


def time_split(df: pd.DataFrame, valid_frac: float = 0.15, holdout_frac: float = 0.15):
    """Split by time (never shuffled): oldest -> train, then validation (early stopping), newest -> holdout."""
    df = df.dropna(subset=[TARGET]).sort_values("event_timestamp").reset_index(drop=True)
    n = len(df)
    if n < 200:
        raise ValueError(f"need at least 200 labelled rows to train, got {n}")
    n_hold = int(n * holdout_frac)
    n_valid = int(n * valid_frac)
    train = df.iloc[: n - n_hold - n_valid]
    valid = df.iloc[n - n_hold - n_valid : n - n_hold]
    hold = df.iloc[n - n_hold :]
    assert train["event_timestamp"].max() < valid["event_timestamp"].min() <= hold["event_timestamp"].min()
    return train, valid, hold


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    p = np.clip(p, 1e-6, 1 - 1e-6)
    out = {"holdout_logloss": float(log_loss(y, p, labels=[0, 1])),
           "holdout_accuracy": float(accuracy_score(y, p >= 0.5))}
    out["holdout_auc"] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else 0.5
    return out


def train_and_register(
    features: pd.DataFrame,
    *,
    model_name: str,
    alias: str = "champion",
    tracking_uri: str | None = None,
    experiment: str = "fx-direction",
    instrument: str = "USD_SGD",
    params: dict | None = None,
    seed: int = 7,
) -> TrainResult:
    import mlflow
    import xgboost as xgb
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    data = features[features["instrument"] == instrument]
    if data.empty:
        raise ValueError(f"no feature rows for instrument {instrument!r}")
    train, valid, hold = time_split(data)
    hp = {"n_estimators": 300, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8,
          "colsample_bytree": 0.8, "min_child_weight": 5, "reg_lambda": 1.0}
    hp.update(params or {})
    model = xgb.XGBClassifier(**hp, objective="binary:logistic", eval_metric="logloss",
                              early_stopping_rounds=30, random_state=seed, n_jobs=1, tree_method="hist")
    X = lambda d: d[FEATURE_COLUMNS].astype("float64")  # noqa: E731
    model.fit(X(train), train[TARGET].astype(int), eval_set=[(X(valid), valid[TARGET].astype(int))], verbose=False)
    y_hold = hold[TARGET].astype(int).to_numpy()
    metrics = _metrics(y_hold, model.predict_proba(X(hold))[:, 1])
    metrics["best_iteration"] = float(model.best_iteration)

    client = MlflowClient()
    champion_version, champion_loss = None, None
    try:
        mv = client.get_model_version_by_alias(model_name, alias)
        champion_version = str(mv.version)
        champ = mlflow.xgboost.load_model(f"models:/{model_name}/{mv.version}")
        feats = _model_features(client, model_name, mv.version)
        champion_loss = _metrics(y_hold, champ.predict_proba(hold[feats].astype("float64"))[:, 1])["holdout_logloss"]
    except MlflowException as exc:
        log.info("no current %s@%s to compare with (%s)", model_name, alias, exc.error_code)

    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"{instrument}-xgb") as run:
        mlflow.log_params({**hp, "instrument": instrument, "n_train": len(train), "n_valid": len(valid),
                           "n_holdout": len(hold), "features": ",".join(FEATURE_COLUMNS)})
        mlflow.log_metrics(metrics)
        if champion_loss is not None:
            mlflow.log_metric("champion_holdout_logloss", champion_loss)
        sig = infer_signature(X(hold.head(5)), model.predict_proba(X(hold.head(5)))[:, 1])
        import sklearn

        # Explicit requirements: MLflow's inference of them re-imports the model (seconds per run).
        reqs = [f"xgboost=={xgb.__version__}", f"scikit-learn=={sklearn.__version__}"]
        info = mlflow.xgboost.log_model(model, name="model", signature=sig, model_format="ubj",
                                        pip_requirements=reqs)
    mv = mlflow.register_model(info.model_uri, model_name, tags={"instrument": instrument})
    client.set_model_version_tag(model_name, mv.version, "features", ",".join(FEATURE_COLUMNS))
    client.set_model_version_tag(model_name, mv.version, PROMOTION_METRIC, f"{metrics[PROMOTION_METRIC]:.6f}")
    promoted = champion_loss is None or metrics[PROMOTION_METRIC] < champion_loss
    if promoted:
        client.set_registered_model_alias(model_name, alias, mv.version)
        log.info("promoted %s v%s to @%s (logloss %.5f vs %s)", model_name, mv.version, alias,
                 metrics[PROMOTION_METRIC], champion_loss)
    else:
        log.info("kept %s v%s as @%s: new logloss %.5f is not below %.5f", model_name, champion_version,
                 alias, metrics[PROMOTION_METRIC], champion_loss)
    return TrainResult(run.info.run_id, str(mv.version), metrics, champion_version, champion_loss, promoted)


def _model_features(client, model_name: str, version: str) -> list[str]:
    mv = client.get_model_version(model_name, version)
    tag = (mv.tags or {}).get("features")
    return tag.split(",") if tag else list(FEATURE_COLUMNS)
