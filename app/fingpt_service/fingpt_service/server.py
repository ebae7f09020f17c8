"""fx-fingpt HTTP API: POST /analyze, GET /health (live), GET /ready (model loaded), GET /metrics."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

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


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    headlines: list[str] = Field(min_length=1, examples=[["Singapore dollar climbs as MAS keeps policy tight"]])


class Backend:
    """Lexicon (ready at once) or the model, loaded on a background thread."""

    def __init__(self, settings: FinGPTSettings) -> None:
        self.settings = settings
        self.model = None
        self.error: str | None = None
        self.ready = settings.mode == "lexicon"
        self._lock = threading.Lock()
        MODEL_LOADED.set(1 if self.ready else 0)

    def load(self) -> None:
        from .model import SentimentModel

        t0 = time.time()
        try:
            self.model = SentimentModel(self.settings)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("model load failed: %s", self.error)
            return
        self.ready = True
        MODEL_LOADED.set(1)
        log.info("model ready in %.1fs", time.time() - t0)

    def analyze(self, texts: list[str]) -> list[tuple[str, float]]:
        if self.settings.mode == "lexicon":
            return [lexicon.score_text(t) for t in texts]
        with self._lock:
            return self.model.analyze(texts)

    def describe(self) -> dict:
        s = self.settings
        return {"mode": s.mode, "base_model": s.base_model if s.mode == "model" else None,
                "adapter": s.adapter if s.mode == "model" else None,
                "quantized_8bit": bool(self.model and self.model.quantized),
                "device": self.model.device if self.model else "cpu"}


def create_app(settings: FinGPTSettings | None = None) -> FastAPI:
    s = settings or FinGPTSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        backend = Backend(s)
        app.state.backend = backend
        if s.mode == "model":
            threading.Thread(target=backend.load, name="fingpt-load", daemon=True).start()
        yield

    app = FastAPI(title="fx-fingpt", version="0.1.0", lifespan=lifespan)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        start, status = time.perf_counter(), 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            ep = request.url.path if request.url.path in ROUTES else "other"
            if ep != "/metrics":
                LATENCY.labels(ep).observe(time.perf_counter() - start)
            REQUESTS.labels(ep, str(status)).inc()

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{loc}: {'request body is not valid JSON' if e.get('type') == 'json_invalid' else e.get('msg')}")
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint {request.url.path}; try POST /analyze, GET /health, GET /ready"
        elif exc.status_code == 405:
            detail = f"method {request.method} not allowed on {request.url.path}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code)

    @app.post("/analyze")
    def analyze(req: AnalyzeRequest, request: Request):
        backend: Backend = request.app.state.backend
        if len(req.headlines) > s.max_batch:
            return JSONResponse({"detail": f"headlines: at most {s.max_batch} items per request "
                                           f"(FINGPT_MAX_BATCH), got {len(req.headlines)}"}, status_code=422)
        for i, h in enumerate(req.headlines):
            if not h.strip():
                return JSONResponse({"detail": f"headlines.{i}: empty headline"}, status_code=422)
            if len(h) > s.max_chars:
                return JSONResponse({"detail": f"headlines.{i}: {len(h)} characters, limit {s.max_chars} "
                                               f"(FINGPT_MAX_CHARS)"}, status_code=422)
        if not backend.ready:
            why = f"model failed to load: {backend.error}" if backend.error else "model is still loading"
            return JSONResponse({"detail": why}, status_code=503)
        results = backend.analyze([h.strip() for h in req.headlines])
        HEADLINES.inc(len(results))
        for label, _ in results:
            SENTIMENT.labels(label).inc()
        return {"results": [{"text": t, "label": lab, "score": sc} for t, (lab, sc) in zip(req.headlines, results)],
                **backend.describe()}

    @app.get("/health")
    def health(request: Request):
        b: Backend = request.app.state.backend
        return {"status": "alive", "mode": s.mode, "ready": b.ready, "load_error": b.error}

    @app.get("/ready")
    def ready(request: Request):
        b: Backend = request.app.state.backend
        if b.ready:
            return {"status": "ready", **b.describe()}
        return JSONResponse({"status": "loading" if not b.error else "failed", "detail": b.error}, status_code=503)

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


app = create_app()
