"""fx-fastapi: POST /predict, GET /health, GET /livez, GET /metrics (module ``app.main:app``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from datetime import datetime, timezone

# MLflow's HTTP client retries for minutes by default; a reload loop wants quick failures.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

import numpy as np  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, field_validator  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

from fx_pipeline.config import INSTRUMENT_RE  # noqa: E402
from fx_pipeline.online import FeatureRowIncomplete, OnlineFeatureReader  # noqa: E402

from . import metrics  # noqa: E402
from .model import ModelManager  # noqa: E402
from .settings import ServiceSettings  # noqa: E402

log = logging.getLogger("fx_fastapi")


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instrument: str = Field(min_length=7, max_length=7, examples=["USD_SGD"])

    @field_validator("instrument")
    @classmethod
    def _format(cls, v: str) -> str:
        v = v.strip().upper()
        if not INSTRUMENT_RE.match(v):
            raise ValueError("must look like USD_SGD (three letters, underscore, three letters)")
        return v


class PredictResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    instrument: str
    probability_up: float
    direction: str
    confidence: float
    model_name: str
    model_version: str
    features: dict[str, float]
    feature_timestamp: datetime
    feature_age_seconds: float


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    s = settings or ServiceSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        pw = s.redis_password.get_secret_value() if s.redis_password else None
        app.state.redis = aioredis.Redis(
            host=s.redis_host, port=s.redis_port, db=s.redis_db, password=pw or None,
            socket_timeout=s.redis_timeout_seconds, socket_connect_timeout=s.redis_timeout_seconds,
        )
        app.state.reader = OnlineFeatureReader(app.state.redis)
        app.state.models = ModelManager(s.model_name, s.model_alias, s.mlflow_tracking_uri)
        task = asyncio.create_task(_reload_loop(app.state.models, s.model_reload_seconds))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.state.redis.aclose()

    app = FastAPI(title="fx-fastapi", version="0.1.0", lifespan=lifespan)
    app.state.settings = s
    known_routes = {"/predict", "/health", "/livez", "/metrics", "/docs", "/openapi.json"}

    @app.middleware("http")
    async def observe(request: Request, call_next):
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            path = request.url.path
            endpoint = path if path in known_routes else "other"
            if endpoint != "/metrics":
                metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - start)
            metrics.REQUESTS.labels(endpoint, request.method, str(status)).inc()

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            msg = e.get("msg", "invalid")
            if e.get("type") == "json_invalid":
                msg = "request body is not valid JSON"
            problems.append(f"{loc}: {msg}")
        return JSONResponse({"detail": "; ".join(problems), "errors": jsonable(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint {request.url.path}; try POST /predict, GET /health, GET /metrics"
        elif exc.status_code == 405:
            detail = f"method {request.method} not allowed on {request.url.path}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.post("/predict", response_model=PredictResponse)
    async def predict(req: PredictRequest, request: Request) -> PredictResponse:
        instrument = req.instrument
        if instrument not in s.instruments:
            raise ApiError(404, f"instrument {instrument!r} is not served; served instruments: {', '.join(s.instruments)}")
        model = request.app.state.models.current
        if model is None:
            raise ApiError(503, f"no model loaded: {request.app.state.models.last_error}")
        try:
            row = await request.app.state.reader.aread(instrument)
        except RedisError as exc:
            raise ApiError(503, f"online feature store (Redis) unavailable: {type(exc).__name__}") from None
        except FeatureRowIncomplete as exc:
            raise ApiError(503, str(exc)) from None
        if row is None:
            raise ApiError(503, f"no online features for {instrument} yet: the feature pipeline has not materialized it")
        now = datetime.now(timezone.utc)
        age = row.age_seconds(now)
        metrics.FEATURE_AGE.labels(instrument).set(age)
        if age > s.feature_max_age_seconds:
            raise ApiError(503, f"features for {instrument} are stale: {age:.0f}s old "
                                f"(limit FEATURE_MAX_AGE_SECONDS={s.feature_max_age_seconds:.0f}), last at {row.event_timestamp.isoformat()}")
        missing = [f for f in model.features if f not in row.values]
        if missing:
            raise ApiError(503, f"model v{model.version} needs features {missing} that the online store does not hold")
        x = np.array([row.values[f] for f in model.features], dtype=np.float64)
        if not np.isfinite(x).all():
            bad = [f for f, v in zip(model.features, x) if not math.isfinite(v)]
            raise ApiError(503, f"online features for {instrument} hold non-finite values: {bad}")
        p = model.predict_up(x)
        direction = "up" if p >= 0.5 else "down"
        metrics.PREDICTIONS.labels(instrument, direction).inc()
        metrics.PROB_UP.labels(instrument).observe(p)
        return PredictResponse(
            instrument=instrument, probability_up=p, direction=direction, confidence=max(p, 1.0 - p),
            model_name=model.name, model_version=model.version,
            features={f: row.values[f] for f in model.features},
            feature_timestamp=row.event_timestamp, feature_age_seconds=age,
        )

    @app.get("/health")
    async def health(request: Request):
        redis_ok, redis_error = True, None
        try:
            await request.app.state.redis.ping()
        except (RedisError, OSError) as exc:
            redis_ok, redis_error = False, type(exc).__name__
        mm: ModelManager = request.app.state.models
        model = mm.current
        body = {
            "status": "ok" if redis_ok and model else "degraded",
            "redis": redis_ok,
            "model_loaded": model is not None,
            "model_name": mm.name,
            "model_version": model.version if model else None,
        }
        if redis_error:
            body["redis_error"] = redis_error
        if model is None:
            body["model_error"] = mm.last_error
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/livez")
    async def livez():
        return {"status": "alive"}

    @app.get("/metrics")
    async def prometheus_metrics():
        data, ctype = metrics.render()
        return Response(data, media_type=ctype)

    return app


def jsonable(errors: list[dict]) -> list[dict]:
    return [{k: (v if isinstance(v, (str, int, float, list, type(None))) else str(v)) for k, v in e.items()
             if k in ("loc", "msg", "type", "input")} for e in errors]


async def _reload_loop(models: ModelManager, every: float) -> None:
    while True:
        try:
            await asyncio.to_thread(models.refresh)
        except Exception:  # refresh already catches; never let the loop die
            log.exception("model refresh loop")
        await asyncio.sleep(every)


app = create_app()
