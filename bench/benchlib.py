"""Shared by the benchmarks: a free loopback port, and the memory of a process tree from /proc (PSS counts pages
shared between forked workers once)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_mib(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class PeakSampler:
    """Samples a process tree's PSS in a background thread until stopped; `peak` holds the maximum in MiB."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, pss_mib(self.pid))

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree so far (live processes only), from /proc/<pid>/stat."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def worker_pss_mib(pid: int) -> list[float]:
    """PSS of each child of ``pid`` (the workers of a gunicorn master), in MiB."""
    out = []
    for p in tree(pid):
        if p == pid:
            continue
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    out.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return out


class RegistryStandIn:
    """The four MLflow REST calls fx-fastapi makes (app/registry.py), answered on loopback from a model version's
    files downloaded from the real registry the benchmark trained into: the service then loads its model as it does
    in the stack (over HTTP from the MLflow server) rather than through MLflow's client, which the image lacks.
    Runs in a thread of the benchmark's own process, so its CPU is not the server's."""

    def __init__(self, name: str, version: str, tags: dict[str, str], files: Path) -> None:
        import http.server
        import json as _json
        import threading
        import urllib.parse

        mv = {"name": name, "version": version, "tags": [{"key": k, "value": v} for k, v in tags.items()]}

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = urllib.parse.urlsplit(self.path).path
                body, ctype, status = b"", "application/json", 200
                if path == "/api/2.0/mlflow/registered-models/alias":
                    body = _json.dumps({"model_version": mv}).encode()
                elif path == "/api/2.0/mlflow/model-versions/get-download-uri":
                    body = _json.dumps({"artifact_uri": "mlflow-artifacts:/model"}).encode()
                elif path.startswith("/api/2.0/mlflow-artifacts/artifacts/model/"):
                    f = files / urllib.parse.unquote(path.rsplit("/model/", 1)[1])
                    if f.is_file():
                        body, ctype = f.read_bytes(), "application/octet-stream"
                    else:
                        status = 404
                else:
                    status = 404
                if status == 404:
                    body = _json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": path}).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serving_venv(root: Path) -> Path:
    """A venv holding exactly fx-fastapi's image lock and the app's packages, nothing test-only: the service run from
    the test venv would measure other code, since xgboost imports pandas, pyarrow and scikit-learn whenever they are
    installed (5 s and ~140 MiB more per worker, measured). Re-created when the lock changes; returns its python."""
    import hashlib
    import subprocess

    lock = root / "app" / "requirements" / "locks" / "fastapi.txt"
    venv = root / ".venvs" / "fastapi-serving"
    stamp = hashlib.sha256(lock.read_bytes() + (root / "app" / "pyproject.toml").read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if (venv / ".lock-hash").is_file() and (venv / ".lock-hash").read_text() == stamp:
        return python
    uv = root / ".venvs" / ".tools" / "bin" / "uv"
    subprocess.run([str(uv), "venv", "-q", "--clear", "--python", "python3.11", str(venv)], check=True)
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), "--require-hashes", "-r", str(lock)],
                   check=True)
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), "--no-deps", str(root / "app"),
                    str(root / "app" / "libs" / "fx_http")], check=True)
    (venv / ".lock-hash").write_text(stamp)
    return python
