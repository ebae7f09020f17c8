"""A service under test as a real process: its output kept in a file, readiness waits with deadlines that hold on a busy
2-core machine, and the server's own output in every failure message (importable: tests/conftest.py puts this
folder on sys.path)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

# Model load plus interpreter start of a gunicorn worker took 6-12 s here when quiet; 180 s holds with the CPUs shared.
READY_DEADLINE = float(os.environ.get("TEST_READY_DEADLINE", "180"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path | str, port: int, name: str) -> None:
        self.name, self.port = name, port
        self.base = f"http://127.0.0.1:{port}"
        self._log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.ready_after: float | None = None

    def output(self, tail: int = 8000) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return text[-tail:]

    def fail(self, why: str) -> AssertionError:
        return AssertionError(f"{self.name}: {why}\n----- {self.name} output (last 8000 chars) -----\n{self.output()}")

    def wait_ready(self, path: str, *, streak: int = 1, deadline: float = READY_DEADLINE) -> float:
        """Poll ``path`` over fresh connections until ``streak`` answers in a row are 200; seconds since start."""
        end, ok, last = time.monotonic() + deadline, 0, "no answer"
        while time.monotonic() < end and ok < streak:
            if self.proc.poll() is not None:
                raise self.fail(f"exited with {self.proc.returncode} before it was ready")
            try:
                r = httpx.get(self.base + path, timeout=2)
                ok, last = (ok + 1, "200") if r.status_code == 200 else (0, f"{r.status_code} {r.text[:300]}")
            except httpx.HTTPError as exc:
                ok, last = 0, repr(exc)
            time.sleep(0.05 if ok else 0.25)
        if ok < streak:
            raise self.fail(f"GET {path} not 200 {streak}x in a row within {deadline:.0f}s; last: {last}")
        self.ready_after = time.monotonic() - self.started
        return self.ready_after

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        out = self.output(10**7)
        self._log.close()
        os.unlink(self._log.name)
        return out
