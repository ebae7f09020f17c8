"""The whole contract on one app: what both services install, in one call, so neither can drift from the other."""

from __future__ import annotations

from fastapi import FastAPI

from .body import BodyLimitMiddleware, StrictJSONRoute
from .errors import install_error_handlers
from .timing import Observer, TimingMiddleware


def apply_contract(app: FastAPI, *, endpoints: str, max_request_bytes: int, observe: Observer) -> None:
    """Strict JSON routes, the JSON error handlers (``endpoints`` is the 404 hint), the MAX_REQUEST_BYTES limit and
    per-request timing. Call it before the first route is declared: routes take the route class they are made with."""
    app.router.route_class = StrictJSONRoute
    install_error_handlers(app, endpoints)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_request_bytes, setting="MAX_REQUEST_BYTES")
    app.add_middleware(TimingMiddleware, observe=observe)
