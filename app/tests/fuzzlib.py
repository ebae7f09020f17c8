"""Runs the schemathesis CLI (every check, positive and negative data, fixed seed, bounded example count) against
a live service's OpenAPI document and returns its JSON report (importable: tests/conftest.py puts this folder on
sys.path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SEED = 17


def run_schemathesis(server, tmp_path: Path, max_examples: int, timeout: float = 600) -> dict:
    report = tmp_path / "schemathesis.json"
    cli = Path(sys.executable).with_name("schemathesis")
    argv = [str(cli), "run", f"{server.base}/openapi.json", "--checks", "all", "--mode", "all",
            "--max-examples", str(max_examples), "--seed", str(SEED), "--workers", "1",
            "--request-timeout", "10", "--report", "json", "--report-json-path", str(report)]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    if not report.exists():
        raise server.fail(f"schemathesis wrote no report (exit {proc.returncode}):\n{proc.stdout[-6000:]}"
                          f"\n{proc.stderr[-3000:]}")
    data = json.loads(report.read_text())
    cases = data["test_cases"]
    print(f"\nschemathesis {server.name}: {cases['generated']} test cases over {data['operations']['tested']} "
          f"operations, {cases['with_failures']} with failures, {len(data['errors'])} errors, "
          f"{data['running_time']:.1f}s, seed {SEED}, max examples {max_examples}")
    if proc.returncode != 0 or data["failures"] or data["errors"]:
        raise server.fail(f"schemathesis found problems (exit {proc.returncode}):\n{proc.stdout[-10000:]}")
    return data


def raw_request(server, data: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send bytes as they are (no client library to tidy them up); the status code and the raw response."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)  # no half-close: uvicorn takes EOF as the client leaving and drops the answer
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not b:
                break
            chunks.append(b)
    resp = b"".join(chunks)
    if not resp.startswith(b"HTTP/1."):
        raise server.fail(f"no HTTP answer to {data[:200]!r}: {resp[:200]!r}")
    return int(resp.split(b" ", 2)[1]), resp


def malformed_http(server, post_path: str, get_path: str, limit: int) -> dict[str, int]:
    """Hand-made requests a client library would refuse to send; returns name -> status (all must be 4xx or 2xx)."""
    host = f"Host: 127.0.0.1:{server.port}\r\nConnection: close\r\n".encode()
    big = limit + 1
    chunk = b"%x\r\n%s\r\n" % (4096, b"a" * 4096)
    cases = {
        "Content-Length far over the limit, no body": (
            b"POST " + post_path.encode() + b" HTTP/1.1\r\n" + host +
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n", {413}),
        "chunked body over the limit": (
            b"POST " + post_path.encode() + b" HTTP/1.1\r\n" + host +
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
            chunk * (big // 4096 + 2) + b"0\r\n\r\n", {413}),
        "Content-Length not a number": (
            b"POST " + post_path.encode() + b" HTTP/1.1\r\n" + host + b"Content-Length: ten\r\n\r\n", {400}),
        "invalid percent-encoded UTF-8 in the path": (b"GET /%ff%fe%00 HTTP/1.1\r\n" + host + b"\r\n", {404}),
        "lower-case method": (b"get " + get_path.encode() + b" HTTP/1.1\r\n" + host + b"\r\n", {400, 405}),
        # the HTTP parser refuses methods it does not know (400) before the app; known ones get 405 with Allow
        "unknown method": (b"BREW " + post_path.encode() + b" HTTP/1.1\r\n" + host + b"\r\n", {400, 405}),
        "WebDAV method": (b"PROPFIND " + post_path.encode() + b" HTTP/1.1\r\n" + host + b"\r\n", {405}),
        "non-ASCII header value": (b"GET " + get_path.encode() + b" HTTP/1.1\r\n" + host +
                                   b"X-Note: \xff\xfe caf\xc3\xa9\r\n\r\n", {200, 503}),
        "a GET with a JSON body": (b"GET " + get_path.encode() + b" HTTP/1.1\r\n" + host +
                                   b"Content-Type: application/json\r\nContent-Length: 4\r\n\r\nNaN!", {200, 503}),
        "JSON declared UTF-16, sent as UTF-8 NaN": (
            b"POST " + post_path.encode() + b" HTTP/1.1\r\n" + host +
            b"Content-Type: application/json; charset=utf-16\r\nContent-Length: 3\r\n\r\nNaN", {422}),
        "HTTP/1.0 without Host": (b"GET " + get_path.encode() + b" HTTP/1.0\r\n\r\n", {200, 503}),
    }
    seen = {}
    for name, (data, allowed) in cases.items():
        status, resp = raw_request(server, data)
        seen[name] = status
        if status not in allowed:
            raise server.fail(f"{name}: {status}, expected one of {sorted(allowed)}: {resp[:600]!r}")
    return seen
