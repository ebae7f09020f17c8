"""Property-based API test: schemathesis against fx-fingpt's own OpenAPI document, on the real HTTP server."""

import os
import sys
from pathlib import Path

import pytest

from fuzzlib import malformed_http, run_schemathesis
from liveserver import LiveServer, free_port

SERVICE = Path(__file__).resolve().parents[2] / "fingpt_service"


def start(tmp_path, **env):
    port = free_port()
    uvicorn = Path(sys.executable).with_name("uvicorn")
    server = LiveServer([str(uvicorn), "fingpt_service.server:app", "--host", "127.0.0.1", "--port", str(port)],
                        env={**os.environ, "PYTHONPATH": str(SERVICE), **env}, cwd=SERVICE, port=port,
                        name="fx-fingpt")
    return server


@pytest.mark.parametrize("mode", ["lexicon", "model"])
def test_schemathesis_finds_no_server_error_and_no_contract_violation(tmp_path, tiny_model, mode):
    env = {"FINGPT_MODE": mode, "FINGPT_MAX_BATCH": "8", "FINGPT_MAX_CHARS": "300"}
    if mode == "model":
        env.update(FINGPT_BASE_MODEL=tiny_model["base"], FINGPT_ADAPTER=tiny_model["adapter"])
    server = start(tmp_path, **env)
    try:
        server.wait_ready("/ready")
        report = run_schemathesis(server, tmp_path, max_examples=200)
        assert report["operations"]["tested"] == 4
        assert report["test_cases"]["generated"] >= 100
        assert report["valid_rates"]["POST /analyze"]["fuzzing"]["accepted"] > 0  # not only rejections
        print(malformed_http(server, "/analyze", "/ready", 1024 * 1024))
    finally:
        out = server.stop()
    assert "Traceback" not in out, out[-6000:]
