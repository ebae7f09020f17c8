"""Error bodies, their OpenAPI declarations, and the handlers that produce them (one copy for both services)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("fx_http")

MAX_ECHO = 200  # characters of a path or location echoed back in a message


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong and what is allowed instead.")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where in the request: body field path, query, header.")
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: str = Field(description="Every problem, `location: message`, joined by '; '.")
    errors: list[FieldError]


class UnavailableBody(BaseModel):
    detail: str
    dependency: str = Field(description="What is unavailable: redis, mlflow, model.", examples=["redis"])


class DependencyUnavailable(Exception):
    """Answered as 503 UnavailableBody with Retry-After."""

    def __init__(self, dependency: str, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.dependency, self.detail, self.retry_after = dependency, detail, retry_after


_DESCRIPTIONS = {
    404: "Not found (the message says what exists).",
    415: "Request body is not JSON (the message names the Content-Type received).",
    413: "Request body larger than the configured limit (the message names it).",
    422: "The request is not what the schema allows (malformed or non-standard JSON included).",
    503: "A dependency is unavailable or did not answer within the request deadline; retry after Retry-After.",
}
_MODELS: dict[int, type[BaseModel]] = {404: ErrorBody, 413: ErrorBody, 415: ErrorBody, 422: ValidationErrorBody, 503: UnavailableBody}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the real body schema of each error status it can answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for c in codes:
        out[c] = {"model": _MODELS[c], "description": _DESCRIPTIONS[c]}
        if c == 503:
            out[c]["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                                 "schema": {"type": "integer"}}}
    return out


def clean(text: object, limit: int | None = None) -> str:
    """Text safe to put in a UTF-8 JSON body: lone surrogates escaped, optionally cut to ``limit`` characters."""
    s = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    return s


def invalid(loc: tuple[str | int, ...], msg: str, type_: str = "value_error") -> RequestValidationError:
    """A 422 raised from code (not from pydantic) in the same shape as pydantic's."""
    return RequestValidationError([{"loc": ("body", *loc), "msg": msg, "type": type_}])


def _loc(parts: Any) -> list[str | int]:
    out: list[str | int] = []
    for p in parts or ():
        out.append(p if isinstance(p, int) else clean(p, MAX_ECHO))
    return out


def install_error_handlers(app: FastAPI, endpoints: str) -> None:
    """``endpoints`` is the hint a 404 gives, e.g. "POST /predict, GET /health"."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors, parts = [], []
        for e in exc.errors():
            loc = _loc(e.get("loc"))
            shown = [p for p in loc if p != "body"]
            msg = clean(e.get("msg", "invalid"), 500)
            if e.get("type") == "json_invalid":  # pydantic/FastAPI's own wording for unparsable bodies
                msg, shown = "request body is not valid JSON", []
            errors.append({"loc": loc, "msg": msg, "type": str(e.get("type", "value_error"))})
            parts.append(f"{'.'.join(str(p) for p in shown) or 'body'}: {msg}")
        return JSONResponse({"detail": "; ".join(parts), "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        path = clean(request.url.path, MAX_ECHO)
        detail = clean(exc.detail, 500)
        if exc.status_code == 404 and exc.detail == "Not Found":
            detail = f"no such endpoint {path}; try {endpoints}"
        elif exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            detail = f"method {clean(request.method, 40)} not allowed on {path}; allowed: {allow}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DependencyUnavailable)
    async def _unavailable(_: Request, exc: DependencyUnavailable) -> JSONResponse:
        return JSONResponse({"detail": clean(exc.detail, 1000), "dependency": exc.dependency}, status_code=503,
                            headers={"Retry-After": str(exc.retry_after)})
