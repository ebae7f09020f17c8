"""The registered model, loaded from the MLflow registry by alias and swapped when a new version is promoted."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from . import metrics
from .registry import ModelVersion, RegistryClient, RegistryError

log = logging.getLogger(__name__)


class RowPredictor:
    """``Booster.inplace_predict`` of one dense row, without its per-call Python work.

    The same C entry point (``XGBoosterPredictFromDense``) with the same arguments, prepared once: the row lives in one
    float64 buffer whose array interface (its address, shape, type) is encoded at load, and so is the JSON config.
    ``inplace_predict`` re-derives all of it on every call and wraps the answer in a new array: measured here, about
    100 of its 150 us per one-row call. xgboost's version is pinned by the image's lock; tests/fastapi/test_api.py
    compares the service's answer with the registered model's own ``predict_proba``.
    """

    def __init__(self, booster, n_features: int, iteration_range: tuple[int, int]) -> None:
        import ctypes

        from xgboost.core import _LIB, _check_call, array_interface, c_bst_ulong, make_jcargs

        self._booster = booster  # keeps the handle alive
        self._row = np.zeros((1, n_features), dtype=np.float64)
        self._iface = array_interface(self._row)
        self._args = make_jcargs(type=0, training=False, iteration_begin=int(iteration_range[0]),
                                 iteration_end=int(iteration_range[1]), missing=float("nan"), strict_shape=False,
                                 cache_id=0)
        self._shape = ctypes.POINTER(c_bst_ulong)()
        self._dims = c_bst_ulong()
        self._preds = ctypes.POINTER(ctypes.c_float)()
        self._refs = (ctypes.byref(self._shape), ctypes.byref(self._dims), ctypes.byref(self._preds))
        self._call = lambda: _check_call(_LIB.XGBoosterPredictFromDense(
            booster.handle, self._iface, self._args, ctypes.c_void_p(), *self._refs))

    def __call__(self, row: list[float]) -> float:
        self._row[0] = row
        self._call()
        if self._dims.value > 2 or self._shape[0] != 1:
            raise ValueError(f"unexpected prediction shape from xgboost: dims {self._dims.value}")
        return float(self._preds[0])


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    features: list[str]
    booster: object  # xgboost.Booster
    iteration_range: tuple[int, int] = (0, 0)  # (0, best_iteration + 1) after early stopping; (0, 0) = all
    predictor: RowPredictor | None = None

    def predict_up(self, row: list[float]) -> float:
        if self.predictor is not None:
            return self.predictor(row)
        return float(self.booster.inplace_predict(np.array([row], dtype=np.float64),
                                                  iteration_range=self.iteration_range)[0])


# What the last registry check found (``ModelManager.state``); /health and /predict's 503 report it.
CHECKING = "checking"            # no answer from the registry yet (startup)
READY = "ready"                  # a version is served
NO_CHAMPION = "no_champion"      # the registry answered: no such model or alias yet
MLFLOW_UNREACHABLE = "mlflow_unreachable"  # the registry did not answer (network, timeout, 5xx)
LOAD_FAILED = "load_failed"      # the version exists but could not be loaded (artifact, format)
# The registry's own answers for "not there": a missing registered model, or a model without that alias.
_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


def booster_from_files(mlmodel: bytes, read: Callable[[str], bytes]):
    """The xgboost Booster of an MLflow model in the xgboost flavor, from its MLmodel file and a reader of its files.

    ``mlflow.xgboost.load_model`` rebuilds the class the model was logged as (``XGBClassifier``), which needs
    scikit-learn and SciPy's full stack; the service only calls ``Booster.inplace_predict``, and xgboost reads the
    sklearn wrapper's file (the flavor's ``data``) as a plain Booster.
    """
    import xgboost
    import yaml

    flavor = ((yaml.safe_load(mlmodel) or {}).get("flavors") or {}).get("xgboost") or {}
    data = flavor.get("data")
    if not data or ".." in data.split("/"):
        raise ValueError(f"MLmodel has no usable xgboost flavor (flavors.xgboost.data: {data!r})")
    with tempfile.TemporaryDirectory(prefix="fx-model-") as tmp:
        path = os.path.join(tmp, os.path.basename(data))  # the extension tells xgboost the format (.ubj, .json)
        with open(path, "wb") as f:
            f.write(read(data))
        return xgboost.Booster(model_file=path)


class _MlflowClientRegistry:
    """A tracking URI that is not an HTTP server (a database, a local store: the tests' and the benchmark's), read
    with MLflow's own client. The image does not install it: the stack always names the MLflow server."""

    def __init__(self, tracking_uri: str | None) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def version_by_alias(self, name: str, alias: str) -> ModelVersion:
        mv = self.client.get_model_version_by_alias(name, alias)
        return ModelVersion(mv.name, str(mv.version), dict(mv.tags or {}))

    def load_booster(self, name: str, version: str):
        from mlflow.artifacts import download_artifacts

        with tempfile.TemporaryDirectory(prefix="fx-model-") as tmp:
            local = download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)

            def read(rel: str) -> bytes:
                with open(os.path.join(local, rel), "rb") as f:
                    return f.read()

            return booster_from_files(read("MLmodel"), read)


class _RestRegistry(RegistryClient):
    def load_booster(self, name: str, version: str):
        uri = self.download_uri(name, version)
        return booster_from_files(self.artifact(uri, "MLmodel"), lambda rel: self.artifact(uri, rel))


def open_registry(tracking_uri: str | None):
    """The MLflow server over its REST API (what the stack gives); anything else through MLflow's client."""
    if tracking_uri and urlsplit(tracking_uri).scheme in ("http", "https"):
        return _RestRegistry(tracking_uri, timeout=float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")))
    return _MlflowClientRegistry(tracking_uri)


def _is_not_found(exc: Exception) -> bool:
    """The registry's answer "no such model, or no such alias" (MLflow's client and our REST reader alike)."""
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
        where = _redacted(self.tracking_uri) if self.tracking_uri else "the default tracking URI"
        try:
            registry = open_registry(self.tracking_uri)
            mv = registry.version_by_alias(self.name, self.alias)
        except Exception as exc:
            if _is_not_found(exc) and (isinstance(exc, RegistryError) or type(exc).__module__.startswith("mlflow")):
                self.mlflow_reachable = True
                self._failed(NO_CHAMPION, f"no champion model registered yet: MLflow at {where} has no "
                                          f"{self.name}@{self.alias} ({getattr(exc, 'error_code', '')})")
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
            booster = registry.load_booster(self.name, mv.version)
            # One row per request: OpenMP threads cannot speed that up, and their spin-waits after each predict
            # burn CPU that the other worker (and gunicorn's other pods on the node) could use.
            booster.set_param({"nthread": 1})
            tag = (mv.tags or {}).get("features")
            feats = tag.split(",") if tag else list(booster.feature_names or [])
            if not feats:
                raise ValueError(f"{self.name} v{mv.version} has no 'features' tag and no feature names")
            best = booster.attr("best_iteration")
            rng = (0, int(best) + 1) if best is not None else (0, 0)
            new = LoadedModel(self.name, str(mv.version), feats, booster, rng, RowPredictor(booster, len(feats), rng))
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
