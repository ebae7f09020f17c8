"""Request bodies: a size limit answered with 413 before anything is parsed, and strict RFC 8259 JSON."""

from __future__ import annotations

import json
from typing import Any, Callable

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import clean, invalid

MAX_DEPTH = 32  # nesting levels a JSON body may have; ours need 2


class BodyTooLarge(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: at once from Content-Length, or as soon as a chunked body passes it.

    Pure ASGI: the body is never buffered here, so the limit costs one header scan per request.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, setting: str) -> None:
        self.app, self.max_bytes, self.setting = app, max_bytes, setting

    def message(self, size: str) -> str:
        return f"request body is {size}, over the {self.max_bytes}-byte limit ({self.setting})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1  # the HTTP server refuses a malformed Content-Length before we see it
                if declared > self.max_bytes:
                    await JSONResponse({"detail": self.message(f"{declared} bytes")}, status_code=413,
                                       headers={"Connection": "close"})(scope, receive, send)
                    return
                break
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.message(f"more than {self.max_bytes} bytes"))
            return msg

        await self.app(scope, limited, send)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259 has no NaN or Infinity)")


def _walk(value: Any, loc: tuple[str | int, ...], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise invalid(loc, f"JSON nested more than {MAX_DEPTH} levels deep", "json_too_deep")
    if isinstance(value, str):
        _text(value, loc)
    elif isinstance(value, dict):
        for k, v in value.items():
            _text(k, loc, key=True)
            _walk(v, (*loc, k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, (*loc, i), depth + 1)


def _text(s: str, loc: tuple[str | int, ...], key: bool = False) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = s[exc.start].encode("utf-8", "backslashreplace").decode()
        what = "a key" if key else "a string"
        raise invalid(loc, f"{what} holds a lone UTF-16 surrogate {bad}, which is not a Unicode character",
                      "json_surrogate") from None


def check_json(body: bytes) -> Any:
    """Parse ``body`` as RFC 8259 JSON or raise a 422 naming what is wrong and where."""
    try:
        doc = json.loads(body, parse_constant=_no_constants)
    except RecursionError:
        raise invalid((), f"JSON nested more than {MAX_DEPTH} levels deep", "json_too_deep") from None
    except UnicodeDecodeError:
        raise invalid((), "request body is not UTF-8 text", "json_invalid_encoding") from None
    except json.JSONDecodeError as exc:
        raise invalid((), f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                      "json_syntax") from None
    except ValueError as exc:
        raise invalid((), f"request body is not valid JSON: {exc}", "json_syntax") from None
    _walk(doc, (), 1)
    return doc


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


class StrictJSONRoute(APIRoute):
    """An APIRoute whose JSON body is checked by :func:`check_json` before FastAPI parses it."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict(request: Request) -> Response:
            body = await request.body()
            if body:
                ctype = request.headers.get("content-type", "")
                if not _is_json(ctype):  # FastAPI would hand the bytes to the model: "not a valid dictionary"
                    shown = clean(ctype, 100) if ctype else "none"
                    raise HTTPException(415, f"request body must be JSON: send Content-Type: application/json "
                                             f"(got {shown})")
                check_json(body)
            return await handler(request)

        return strict
