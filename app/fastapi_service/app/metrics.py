"""Prometheus metrics (names fixed by docs/contracts.md). Multiprocess-safe under gunicorn.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets a default), every worker writes its samples
to that directory and /metrics aggregates them; gunicorn's child_exit hook marks dead workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REQUESTS = Counter("fx_inference_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "fx_inference_request_duration_seconds", "HTTP request latency", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PREDICTIONS = Counter("fx_predictions_total", "Predictions served", ["instrument", "direction"])
PROB_UP = Histogram(
    "fx_prediction_probability_up", "Predicted probability of an up move", ["instrument"],
    buckets=tuple(round(0.1 * i, 1) for i in range(1, 11)),
)
FEATURE_AGE = Gauge("fx_feature_age_seconds", "Age of the online features last read", ["instrument"],
                    multiprocess_mode="livemostrecent")
FEATURE_TRADING_AGE = Gauge(
    "fx_feature_trading_age_seconds", "Seconds of open market since the online features last read (weekends and "
    "holidays do not count; FEATURE_MAX_AGE_SECONDS limits this)", ["instrument"], multiprocess_mode="livemostrecent")
MODEL_INFO = Gauge("fx_model_info", "Model version loaded (1)", ["model", "version"], multiprocess_mode="livemax")
MODEL_LOADED = Gauge("fx_model_loaded", "1 when every live worker has a model", multiprocess_mode="livemin")


_CHILDREN: dict[tuple, object] = {}


def child(metric, *labels: str):
    """``metric.labels(*labels)``, looked up once per label set: ``labels()`` validates and locks on every call, a
    few microseconds each, several times per request. Label values are bounded (served instruments, routes, methods
    up to 10 characters, status codes), so is this cache."""
    key = (id(metric), *labels)
    c = _CHILDREN.get(key)
    if c is None:
        c = _CHILDREN[key] = metric.labels(*labels)
    return c


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
