"""The registered model, loaded from the MLflow registry by alias and swapped when a new version is promoted."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    features: list[str]
    booster: object  # xgboost.Booster
    iteration_range: tuple[int, int] = (0, 0)  # (0, best_iteration + 1) after early stopping; (0, 0) = all

    def predict_up(self, row: np.ndarray) -> float:
        return float(self.booster.inplace_predict(row.reshape(1, -1), iteration_range=self.iteration_range)[0])


class ModelManager:
    def __init__(self, name: str, alias: str, tracking_uri: str | None) -> None:
        self.name, self.alias, self.tracking_uri = name, alias, tracking_uri
        self.current: LoadedModel | None = None
        self.last_error: str | None = "not checked yet"
        self.last_check: float = 0.0
        self._lock = threading.Lock()
        metrics.MODEL_LOADED.set(0)

    def refresh(self) -> bool:
        """Look up ``name@alias``; load it if it is a version we do not serve yet. True if swapped."""
        with self._lock:
            try:
                return self._refresh()
            finally:
                self.last_check = time.time()

    def _refresh(self) -> bool:
        import mlflow.xgboost
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            mv = client.get_model_version_by_alias(self.name, self.alias)
            if self.current is not None and self.current.version == str(mv.version):
                self.last_error = None
                return False
            model = mlflow.xgboost.load_model(f"models:/{self.name}/{mv.version}")
            booster = model.get_booster() if hasattr(model, "get_booster") else model
            tag = (mv.tags or {}).get("features")
            feats = tag.split(",") if tag else list(booster.feature_names or [])
            if not feats:
                raise ValueError(f"{self.name} v{mv.version} has no 'features' tag and no feature names")
            best = booster.attr("best_iteration")
            rng = (0, int(best) + 1) if best is not None else (0, 0)
            new = LoadedModel(self.name, str(mv.version), feats, booster, rng)
        except MlflowException as exc:
            self.last_error = f"no model {self.name}@{self.alias} in the registry yet ({exc.error_code})"
            log.warning("model refresh: %s", self.last_error)
            return False
        except Exception as exc:  # network, artifact store, corrupt artifact: keep serving the old one
            self.last_error = f"loading {self.name}@{self.alias} failed: {type(exc).__name__}: {exc}"[:500]
            log.warning("model refresh: %s", self.last_error)
            return False
        old, self.current, self.last_error = self.current, new, None
        if old is not None:
            metrics.MODEL_INFO.labels(old.name, old.version).set(0)
        metrics.MODEL_INFO.labels(new.name, new.version).set(1)
        metrics.MODEL_LOADED.set(1)
        log.info("serving %s v%s (was %s)", new.name, new.version, old.version if old else None)
        return True
