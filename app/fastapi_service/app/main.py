"""fx-fastapi: POST /predict, GET /health, GET /livez, GET /metrics (module ``app.main:app``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Literal

# MLflow's HTTP client retries for minutes by default; a reload loop wants quick failures.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

import redis.asyncio as aioredis  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402
from redis.asyncio.retry import Retry  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402

from fx_http import Breaker, DependencyUnavailable, apply_contract, error_responses  # noqa: E402
from fx_pipeline.market import HOLIDAYS_ENV, TradingCalendar  # noqa: E402
from fx_pipeline.online import FeatureRowIncomplete, OnlineFeatureReader  # noqa: E402

from . import metrics  # noqa: E402
from .model import MLFLOW_UNREACHABLE, ModelManager  # noqa: E402
from .settings import ServiceSettings  # noqa: E402

log = logging.getLogger("fx_fastapi")

ROUTES = ("/predict", "/health", "/livez", "/metrics")
ENDPOINTS = "POST /predict, GET /health, GET /livez, GET /metrics"


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Upper or lower case; served instruments are configured (INSTRUMENTS), others answer 404.
    instrument: str = Field(pattern=r"^[A-Za-z]{3}_[A-Za-z]{3}$", examples=["USD_SGD"],
                            description="Three letters, underscore, three letters (case-insensitive).")


class PredictResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    instrument: str
    probability_up: float = Field(ge=0, le=1)
    direction: Literal["up", "down"]
    confidence: float = Field(ge=0.5, le=1)
    model_name: str
    model_version: str
    features: dict[str, float]
    feature_timestamp: datetime
    feature_age_seconds: float = Field(description="Seconds on the clock since the features' event time.")
    feature_trading_age_seconds: float = Field(
        description="Seconds of open market since the features' event time (what FEATURE_MAX_AGE_SECONDS limits).")


class HealthBody(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    status: Literal["ok", "degraded"]
    redis: bool
    redis_error: str | None = None
    model_loaded: bool
    model_state: Literal["checking", "ready", "no_champion", "mlflow_unreachable", "load_failed"]
    model_name: str
    model_version: str | None
    model_error: str | None = None
    mlflow_reachable: bool | None = Field(description="Whether the last registry check got an answer (null: none yet).")
    model_load_seconds: float | None = Field(description="Seconds from service start to the first model served.")


class MetricsResponse(Response):
    media_type = CONTENT_TYPE_LATEST


def make_redis(s: ServiceSettings) -> aioredis.Redis:
    """A bounded pool that connects outside its lock, and no hidden retries: the breaker is the retry policy.

    redis-py's default async pool opens connections while holding a pool-wide lock (one stuck connect queues every
    request) and its client retries 3 times with exponential backoff from 1 s: both turn a frozen Redis into
    seconds-long waits. BlockingConnectionPool connects outside its lock; its wait for a free connection is bounded
    by the request deadline like everything else.
    """
    pw = s.redis_password.get_secret_value() if s.redis_password else None
    pool = aioredis.BlockingConnectionPool(
        host=s.redis_host, port=s.redis_port, db=s.redis_db, password=pw or None,
        max_connections=s.redis_max_connections, timeout=s.request_deadline_seconds,
        socket_timeout=s.request_deadline_seconds, socket_connect_timeout=s.request_deadline_seconds,
        retry=Retry(NoBackoff(), 0),
    )
    return aioredis.Redis.from_pool(pool)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def create_app(settings: ServiceSettings | None = None, clock: Callable[[], datetime] = _utcnow) -> FastAPI:
    """``clock`` gives "now" for the features' age (tests pass a fixed instant)."""
    s = settings or ServiceSettings()
    calendar = TradingCalendar(s.market_holidays)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.redis = make_redis(s)
        app.state.reader = OnlineFeatureReader(app.state.redis)
        app.state.breaker = Breaker(
            "redis", f"online feature store (Redis at {s.redis_host}:{s.redis_port})", s.request_deadline_seconds,
            app.state.redis.ping, (RedisError, OSError), retry_interval=s.redis_retry_seconds)
        app.state.models = ModelManager(s.model_name, s.model_alias, s.mlflow_tracking_uri)
        task = asyncio.create_task(_reload_loop(app.state.models, s.model_reload_seconds))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.state.breaker.aclose()
            await app.state.redis.aclose()

    app = FastAPI(title="fx-fastapi", version="0.1.0", lifespan=lifespan)
    app.state.settings = s

    def observe(path: str, method: str, status: int, seconds: float) -> None:
        endpoint = path if path in ROUTES else "other"
        if endpoint != "/metrics":
            metrics.child(metrics.LATENCY, endpoint).observe(seconds)
        metrics.child(metrics.REQUESTS, endpoint, method if len(method) <= 10 else "other", str(status)).inc()

    apply_contract(app, endpoints=ENDPOINTS, max_request_bytes=s.max_request_bytes, observe=observe)

    @app.post("/predict", response_model=PredictResponse, responses=error_responses(404, 413, 415, 422, 503))
    async def predict(req: PredictRequest, request: Request):
        instrument = req.instrument.upper()
        if instrument not in s.instruments:
            return JSONResponse({"detail": f"instrument {instrument!r} is not served; served instruments: "
                                           f"{', '.join(s.instruments)}"}, status_code=404)
        mm: ModelManager = request.app.state.models
        model = mm.current
        if model is None:
            raise DependencyUnavailable("mlflow" if mm.state == MLFLOW_UNREACHABLE else "model",
                                        f"no model loaded: {mm.last_error}", retry_after=5)
        reader: OnlineFeatureReader = request.app.state.reader
        try:
            row = await request.app.state.breaker.call(lambda: reader.aread(instrument))
        except FeatureRowIncomplete as exc:
            raise DependencyUnavailable("features", str(exc), retry_after=60) from None
        if row is None:
            raise DependencyUnavailable("features", f"no online features for {instrument} yet: the feature "
                                                    "pipeline has not materialized it", retry_after=60)
        now = clock()
        age = row.age_seconds(now)
        trading_age = calendar.trading_seconds(row.event_timestamp, now)
        metrics.child(metrics.FEATURE_AGE, instrument).set(age)
        metrics.child(metrics.FEATURE_TRADING_AGE, instrument).set(trading_age)
        if trading_age > s.feature_max_age_seconds:
            raise DependencyUnavailable(
                "features", f"features for {instrument} are stale: {trading_age:.0f}s of trading time old "
                            f"({age:.0f}s on the clock; limit FEATURE_MAX_AGE_SECONDS={s.feature_max_age_seconds:.0f}, "
                            f"closed weekends by New York time and on {HOLIDAYS_ENV}), "
                            f"last at {row.event_timestamp.isoformat()}", retry_after=60)
        missing = [f for f in model.features if f not in row.values]
        if missing:
            raise DependencyUnavailable("features", f"model v{model.version} needs features {missing} that the "
                                                    "online store does not hold", retry_after=60)
        x = [row.values[f] for f in model.features]
        if not all(map(math.isfinite, x)):
            bad = [f for f, v in zip(model.features, x) if not math.isfinite(v)]
            raise DependencyUnavailable("features", f"online features for {instrument} hold non-finite values: {bad}",
                                        retry_after=60)
        p = model.predict_up(x)
        direction = "up" if p >= 0.5 else "down"
        metrics.child(metrics.PREDICTIONS, instrument, direction).inc()
        metrics.child(metrics.PROB_UP, instrument).observe(p)
        out = PredictResponse(
            instrument=instrument, probability_up=p, direction=direction, confidence=max(p, 1.0 - p),
            model_name=model.name, model_version=model.version,
            features={f: row.values[f] for f in model.features},
            feature_timestamp=row.event_timestamp, feature_age_seconds=age, feature_trading_age_seconds=trading_age,
        )
        # Serialized once by pydantic-core: returning the model would have FastAPI validate it again, encode it to
        # dicts and json.dumps them (a third of the endpoint's CPU). The schema stays declared by response_model.
        return Response(out.model_dump_json(), media_type="application/json")

    @app.get("/health", response_model=HealthBody, responses={
        503: {"model": HealthBody, "description": "Not ready: Redis unavailable or no model loaded (see the body)."}})
    async def health(request: Request):
        """Readiness: 200 when Redis answers within the deadline and a model is served."""
        redis_ok, redis_error = True, None
        try:
            await request.app.state.breaker.call(request.app.state.redis.ping)
        except DependencyUnavailable as exc:
            redis_ok, redis_error = False, exc.detail
        mm: ModelManager = request.app.state.models
        model = mm.current
        body = HealthBody(
            status="ok" if redis_ok and model else "degraded", redis=redis_ok, redis_error=redis_error,
            model_loaded=model is not None, model_state=mm.state, model_name=mm.name,
            model_version=model.version if model else None, model_error=mm.last_error,
            mlflow_reachable=mm.mlflow_reachable, model_load_seconds=mm.load_seconds)
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if body.status == "ok" else 503)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        """Liveness: the process runs (no dependency is checked)."""
        return {"status": "alive"}

    @app.get("/metrics", response_class=MetricsResponse,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format."}})
    async def prometheus_metrics():
        data, ctype = metrics.render()
        return MetricsResponse(data, media_type=ctype)

    return app


async def _reload_loop(models: ModelManager, every: float) -> None:
    while True:
        try:
            await asyncio.to_thread(models.refresh)
        except Exception:  # refresh already catches; never let the loop die
            log.exception("model refresh loop")
        await asyncio.sleep(every)


app = create_app()
