"""The registered model, loaded from the MLflow registry by alias and swapped when a new version is promoted."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

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


# What the last registry check found (``ModelManager.state``); /health and /predict's 503 report it.
CHECKING = "checking"            # no answer from the registry yet (startup)
READY = "ready"                  # a version is served
NO_CHAMPION = "no_champion"      # the registry answered: no such model or alias yet
MLFLOW_UNREACHABLE = "mlflow_unreachable"  # the registry did not answer (network, timeout, 5xx)
LOAD_FAILED = "load_failed"      # the version exists but could not be loaded (artifact, format)
# The registry's own answers for "not there": a missing registered model, or a model without that alias.
_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


def load_booster(model_uri: str):
    """The xgboost Booster of an MLflow model (xgboost flavor), without MLflow's xgboost flavor module.

    ``mlflow.xgboost.load_model`` rebuilds the class the model was logged as (``XGBClassifier``), which needs
    scikit-learn and SciPy's full stack; the service only calls ``Booster.inplace_predict``. The artifact is the one
    the registry names (downloaded through MLflow, which stays the source of truth), the file is the one the flavor's
    ``data`` entry names, and xgboost reads the sklearn wrapper's file as a plain Booster.
    """
    import xgboost
    import yaml
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="fx-model-") as tmp:
        local = download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        with open(os.path.join(local, "MLmodel"), encoding="utf-8") as f:
            flavor = (yaml.safe_load(f).get("flavors") or {}).get("xgboost")
        if not flavor or not flavor.get("data"):
            raise ValueError(f"{model_uri} has no xgboost flavor (MLmodel flavors.xgboost.data)")
        return xgboost.Booster(model_file=os.path.join(local, flavor["data"]))


def _is_not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    msg = str(exc)
    return code in _NOT_FOUND_CODES or (code == "INVALID_PARAMETER_VALUE" and "alias" in msg and "not found" in msg)


def _redacted(uri: str) -> str:
    """``uri`` fit for messages and HTTP answers: a password in its user info (a database URI) becomes ``***``."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class ModelManager:
    def __init__(self, name: str, alias: str, tracking_uri: str | None) -> None:
        self.name, self.alias, self.tracking_uri = name, alias, tracking_uri
        self.current: LoadedModel | None = None
        self.state = CHECKING
        self.mlflow_reachable: bool | None = None
        self.last_error: str | None = "not checked yet"
        self.last_check: float = 0.0
        self.created = time.monotonic()
        self.load_seconds: float | None = None  # from manager creation (service start) to the first model served
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
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        where = _redacted(self.tracking_uri) if self.tracking_uri else "the default tracking URI"
        try:
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            mv = client.get_model_version_by_alias(self.name, self.alias)
        except Exception as exc:
            if isinstance(exc, MlflowException) and _is_not_found(exc):
                self.mlflow_reachable = True
                self._failed(NO_CHAMPION, f"no champion model registered yet: MLflow at {where} has no "
                                          f"{self.name}@{self.alias} ({exc.error_code})")
            else:
                self.mlflow_reachable = False
                self._failed(MLFLOW_UNREACHABLE, f"MLflow unreachable at {where}: {type(exc).__name__}: {exc}")
            return False
        self.mlflow_reachable = True
        if self.current is not None and self.current.version == str(mv.version):
            self.last_error = None
            self.state = READY
            return False
        try:
            booster = load_booster(f"models:/{self.name}/{mv.version}")
            # One row per request: OpenMP threads cannot speed that up, and their spin-waits after each predict
            # burn CPU that the other worker (and gunicorn's other pods on the node) could use.
            booster.set_param({"nthread": 1})
            tag = (mv.tags or {}).get("features")
            feats = tag.split(",") if tag else list(booster.feature_names or [])
            if not feats:
                raise ValueError(f"{self.name} v{mv.version} has no 'features' tag and no feature names")
            best = booster.attr("best_iteration")
            rng = (0, int(best) + 1) if best is not None else (0, 0)
            new = LoadedModel(self.name, str(mv.version), feats, booster, rng)
        except Exception as exc:  # artifact store, corrupt artifact: keep serving the old one
            self._failed(LOAD_FAILED, f"loading {self.name}@{self.alias} v{mv.version} failed: {type(exc).__name__}: {exc}")
            return False
        old, self.current, self.last_error, self.state = self.current, new, None, READY
        if self.load_seconds is None:
            self.load_seconds = round(time.monotonic() - self.created, 3)
            log.info("first model served %.2fs after start", self.load_seconds)
        if old is not None:
            metrics.MODEL_INFO.labels(old.name, old.version).set(0)
        metrics.MODEL_INFO.labels(new.name, new.version).set(1)
        metrics.MODEL_LOADED.set(1)
        log.info("serving %s v%s (was %s)", new.name, new.version, old.version if old else None)
        return True

    def _failed(self, state: str, why: str) -> None:
        self.last_error = why[:500]
        if self.current is None:  # with a model served, a failed check changes nothing for clients
            self.state = state
        log.warning("model refresh: %s", self.last_error)
