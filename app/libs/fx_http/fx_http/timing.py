"""Per-request status and duration, as a pure ASGI middleware (BaseHTTPMiddleware costs a task and a stream per
request)."""

from __future__ import annotations

import time
from typing import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Observer = Callable[[str, str, int, float], None]  # path, method, status, seconds


class TimingMiddleware:
    def __init__(self, app: ASGIApp, observe: Observer) -> None:
        self.app, self.observe = app, observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.observe(scope["path"], scope["method"], status, time.perf_counter() - start)
