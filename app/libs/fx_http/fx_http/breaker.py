"""A deadline and a circuit breaker around one dependency (Redis for fx-fastapi).

Closed: each call gets ``timeout`` seconds; a failure or a miss of the deadline opens the breaker. Open: calls fail at
once with 503 naming the dependency (no request waits on a connection known to be stuck) while one background probe,
every ``retry_interval`` seconds and itself bounded by ``timeout``, checks whether it is back; its first success
closes the breaker. Worst-case recovery after the dependency returns: ``retry_interval + timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, TypeVar

from .errors import DependencyUnavailable

log = logging.getLogger("fx_http.breaker")
T = TypeVar("T")


class Breaker:
    def __init__(self, dependency: str, label: str, timeout: float, probe: Callable[[], Awaitable[object]],
                 errors: tuple[type[BaseException], ...], retry_interval: float = 0.25) -> None:
        self.dependency, self.label = dependency, label
        self.timeout, self.retry_interval = timeout, retry_interval
        self._probe, self._errors = probe, errors
        self.open_since: float | None = None
        self.last_error: str | None = None
        self._task: asyncio.Task | None = None

    def _unavailable(self) -> DependencyUnavailable:
        down = time.monotonic() - (self.open_since or time.monotonic())
        return DependencyUnavailable(
            self.dependency,
            f"{self.label} unavailable: {self.last_error}; failing fast for {down:.1f}s, "
            f"rechecking every {self.retry_interval * 1000:.0f} ms")

    def _trip(self, why: str) -> DependencyUnavailable:
        self.last_error = why
        if self.open_since is None:
            self.open_since = time.monotonic()
            log.warning("%s unavailable (%s): failing fast until a probe answers", self.label, why)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._probe_until_back())
        return self._unavailable()

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"no answer within the {self.timeout * 1000:.0f} ms deadline"
        return f"{type(exc).__name__}: {exc}"[:300]

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        if self.open_since is not None:
            raise self._unavailable()
        try:
            async with asyncio.timeout(self.timeout):
                return await fn()
        except (TimeoutError, *self._errors) as exc:
            raise self._trip(self.describe(exc)) from None

    async def _probe_until_back(self) -> None:
        while self.open_since is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._probe()
            except (TimeoutError, *self._errors) as exc:
                self.last_error = self.describe(exc)
                await asyncio.sleep(self.retry_interval)
                continue
            log.warning("%s back after %.2fs", self.label, time.monotonic() - self.open_since)
            self.open_since, self.last_error = None, None

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
