"""fx-fingpt HTTP API: POST /analyze, GET /health (live), GET /ready (model loaded), GET /metrics."""

import asyncio
import contextlib
import logging
import threading
import time
from typing import Annotated, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from fx_http import DependencyUnavailable, apply_contract, error_responses

from . import lexicon
from .settings import FinGPTSettings

log = logging.getLogger("fingpt_service")

REQUESTS = Counter("fingpt_requests_total", "HTTP requests", ["endpoint", "status"])
LATENCY = Histogram("fingpt_request_duration_seconds", "HTTP request latency", ["endpoint"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
MODEL_LOADED = Gauge("fingpt_model_loaded", "1 once the sentiment backend is ready")
SENTIMENT = Counter("fingpt_sentiment_total", "Headlines by predicted label", ["label"])
HEADLINES = Counter("fingpt_headlines_total", "Headlines analysed")
ROUTES = {"/analyze", "/health", "/ready", "/metrics"}
ENDPOINTS = "POST /analyze, GET /health, GET /ready, GET /metrics"


class Scored(BaseModel):
    text: str
    label: Literal["negative", "neutral", "positive"]
    score: float = Field(ge=0, le=1)


class BackendInfo(BaseModel):
    mode: Literal["model", "lexicon"]
    base_model: str | None
    adapter: str | None
    quantized_8bit: bool
    device: str
    load_seconds: float | None = Field(description="Seconds the model took to load (null in lexicon mode).")


class AnalyzeResponse(BackendInfo):
    results: list[Scored]


class HealthBody(BaseModel):
    status: Literal["alive"]
    mode: Literal["model", "lexicon"]
    ready: bool
    load_error: str | None


class ReadyBody(BackendInfo):
    status: Literal["ready"]


class NotReadyBody(BaseModel):
    status: Literal["loading", "failed"]
    detail: str


class MetricsResponse(Response):
    media_type = CONTENT_TYPE_LATEST


class Backend:
    """Lexicon (ready at once) or the model, loaded on a background thread.

    One batch runs on the model at a time. A request waits for it at most until its deadline; a batch that outlives
    its request's deadline keeps the model until it ends (a forward pass cannot be interrupted), and while it does,
    new requests are answered 503 at once rather than queued behind it.
    """

    def __init__(self, settings: FinGPTSettings) -> None:
        self.settings = settings
        self.model = None
        self.error: str | None = None
        self.ready = settings.mode == "lexicon"
        self.load_seconds: float | None = None
        self._busy = asyncio.Lock()
        self._busy_since: float | None = None
        MODEL_LOADED.set(1 if self.ready else 0)

    def load(self) -> None:
        from .model import SentimentModel

        t0 = time.monotonic()
        try:
            self.model = SentimentModel(self.settings)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("model load failed: %s", self.error)
            return
        self.load_seconds = round(time.monotonic() - t0, 3)
        self.ready = True
        MODEL_LOADED.set(1)
        log.info("model ready in %.1fs", self.load_seconds)

    def _run(self, texts: list[str]) -> list[tuple[str, float]]:
        return self.model.analyze(texts)

    async def analyze(self, texts: list[str]) -> list[tuple[str, float]]:
        if self.settings.mode == "lexicon":
            return [lexicon.score_text(t) for t in texts]
        deadline = self.settings.deadline_seconds
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        since = self._busy_since
        if since is not None and loop.time() - since > deadline:
            raise DependencyUnavailable("model", f"the model has been busy on one batch for {loop.time() - since:.1f}s, "
                                                 f"over the {deadline:g}s deadline (FINGPT_DEADLINE_SECONDS); "
                                                 "failing fast until it finishes", retry_after=max(1, int(deadline)))
        try:
            async with asyncio.timeout(deadline):
                await self._busy.acquire()
        except TimeoutError:
            raise DependencyUnavailable("model", f"the model stayed busy with other batches past the {deadline:g}s "
                                                 "deadline (FINGPT_DEADLINE_SECONDS)", retry_after=1) from None
        self._busy_since = loop.time()
        fut = loop.run_in_executor(None, self._run, texts)

        def done(_: object) -> None:  # the model is free when the batch ends, whoever still waits for it
            self._busy_since = None
            self._busy.release()

        fut.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), max(0.0, end - loop.time()))
        except TimeoutError:
            raise DependencyUnavailable("model", f"the model did not answer within the {deadline:g}s deadline "
                                                 "(FINGPT_DEADLINE_SECONDS)", retry_after=max(1, int(deadline))) from None

    def describe(self) -> dict:
        s = self.settings
        return {"mode": s.mode, "base_model": s.base_model if s.mode == "model" else None,
                "adapter": s.adapter if s.mode == "model" else None,
                "quantized_8bit": bool(self.model and self.model.quantized),
                "device": str(self.model.device) if self.model else "cpu", "load_seconds": self.load_seconds}


def request_model(s: FinGPTSettings) -> type[BaseModel]:
    """The /analyze body with this deployment's limits in its schema, so the OpenAPI document states them."""
    headline = Annotated[str, StringConstraints(min_length=1, max_length=s.max_chars)]
    return create_model(
        "AnalyzeRequest", __config__=ConfigDict(extra="forbid"),
        headlines=(list[headline], Field(min_length=1, max_length=s.max_batch,
                                         description=f"1 to {s.max_batch} headlines (FINGPT_MAX_BATCH), each 1 to "
                                                     f"{s.max_chars} characters (FINGPT_MAX_CHARS).",
                                         examples=[["Singapore dollar climbs as MAS keeps policy tight"]])),
    )


def create_app(settings: FinGPTSettings | None = None) -> FastAPI:
    s = settings or FinGPTSettings()
    AnalyzeRequest = request_model(s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        backend = Backend(s)
        app.state.backend = backend
        if s.mode == "model":
            threading.Thread(target=backend.load, name="fingpt-load", daemon=True).start()
        yield

    app = FastAPI(title="fx-fingpt", version="0.1.0", lifespan=lifespan)

    def observe(path: str, method: str, status: int, seconds: float) -> None:
        ep = path if path in ROUTES else "other"
        if ep != "/metrics":
            LATENCY.labels(ep).observe(seconds)
        REQUESTS.labels(ep, str(status)).inc()

    apply_contract(app, endpoints=ENDPOINTS, max_request_bytes=s.max_request_bytes, observe=observe)

    @app.post("/analyze", response_model=AnalyzeResponse, responses=error_responses(413, 415, 422, 503))
    async def analyze(req: AnalyzeRequest, request: Request):
        backend: Backend = request.app.state.backend
        if not backend.ready:
            why = f"model failed to load: {backend.error}" if backend.error else "model is still loading"
            raise DependencyUnavailable("model", why, retry_after=30 if backend.error else 5)
        results = await backend.analyze(req.headlines)
        HEADLINES.inc(len(results))
        for label, _ in results:
            SENTIMENT.labels(label).inc()
        return {"results": [{"text": t, "label": lab, "score": sc} for t, (lab, sc) in zip(req.headlines, results)],
                **backend.describe()}

    @app.get("/health", response_model=HealthBody)
    async def health(request: Request):
        """Liveness: always 200 while the process serves; `ready` says whether the model is loaded."""
        b: Backend = request.app.state.backend
        return {"status": "alive", "mode": s.mode, "ready": b.ready, "load_error": b.error}

    @app.get("/ready", response_model=ReadyBody,
             responses={503: {"model": NotReadyBody, "description": "The model is loading or failed to load."}})
    async def ready(request: Request):
        b: Backend = request.app.state.backend
        if b.ready:
            return {"status": "ready", **b.describe()}
        return JSONResponse({"status": "loading" if not b.error else "failed",
                             "detail": b.error or "model is still loading"}, status_code=503)

    @app.get("/metrics", response_class=MetricsResponse,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format."}})
    async def metrics():
        return MetricsResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


app = create_app()
