import time

import pytest
from fastapi.testclient import TestClient

from fingpt_service import lexicon
from fingpt_service.model import LABELS, build_prompt
from fingpt_service.server import create_app
from fingpt_service.settings import FinGPTSettings

HEADLINES = ["Singapore dollar climbs as central bank keeps rates", "USD slump deepens", "Bank meets on rates"]


def wait_ready(c, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        r = c.get("/ready")
        if r.status_code == 200:
            return r.json()
        if r.json().get("status") == "failed":
            raise AssertionError(r.json())
        time.sleep(0.2)
    raise AssertionError("never ready")


def test_prompt_is_fingpts():
    assert build_prompt("X up") == ("Instruction: What is the sentiment of this news? Please choose an answer from "
                                    "{negative/neutral/positive}\nInput: X up\nAnswer: ")


def test_lexicon():
    assert lexicon.score_text("Profits surge to a record")[0] == "positive"
    assert lexicon.score_text("Shares tumble on recession fears")[0] == "negative"
    assert lexicon.score_text("Central bank meets on Tuesday") == ("neutral", 0.6)
    assert lexicon.score_text("Exports did not fall")[0] == "positive"


def test_lexicon_mode_api_and_metrics():
    with TestClient(create_app(FinGPTSettings(FINGPT_MODE="lexicon"))) as c:
        assert c.get("/ready").status_code == 200
        r = c.post("/analyze", json={"headlines": ["Profits surge", "Stocks plunge", "Meeting today"]})
        assert r.status_code == 200
        assert [x["label"] for x in r.json()["results"]] == ["positive", "negative", "neutral"]
        text = c.get("/metrics").text
        assert 'fingpt_sentiment_total{label="positive"} 1.0' in text
        assert "fingpt_headlines_total 3.0" in text
        assert 'fingpt_requests_total{endpoint="/analyze",status="200"} 1.0' in text
        assert "fingpt_model_loaded 1.0" in text
        assert "fingpt_request_duration_seconds_bucket" in text


def raw(body: bytes) -> dict:
    return {"content": body, "headers": {"content-type": "application/json"}}


def test_bad_requests():
    with TestClient(create_app(FinGPTSettings(FINGPT_MODE="lexicon", FINGPT_MAX_BATCH=4, FINGPT_MAX_CHARS=50))) as c:
        cases = [({"json": {"headlines": []}}, "headlines: List should have at least 1 item"),
                 ({"json": {"headlines": ["a"] * 5}}, "headlines: List should have at most 4 items"),
                 ({"json": {"headlines": ["x" * 51]}}, "headlines.0: String should have at most 50 characters"),
                 ({"json": {"headlines": ["ok", ""]}}, "headlines.1: String should have at least 1 character"),
                 ({"json": {"headlines": "one"}}, "headlines: Input should be a valid list"),
                 ({"json": {"headlines": [5]}}, "headlines.0: Input should be a valid string"),
                 ({"json": {"text": ["a"]}}, "headlines: Field required"),
                 ({"json": {"headlines": ["a"], "lang": "en"}}, "lang: Extra inputs are not permitted"),
                 ({"content": b"nope", "headers": {"content-type": "application/json"}}, "not valid JSON"),
                 (raw(b'{"headlines": [NaN]}'), "NaN is not a JSON number"),
                 (raw(b'{"headlines": ["a"], "x": -Infinity}'), "-Infinity is not a JSON number"),
                 (raw(b'{"headlines": ["rally \\ud83d"]}'), "headlines.0: a string holds a lone UTF-16 surrogate \\ud83d"),
                 (raw(b'{"\\udfff": 1}'), "a key holds a lone UTF-16 surrogate \\udfff"),
                 (raw(b'{"headlines": ' + b"[" * 40 + b"]" * 40 + b"}"), "nested more than 32 levels deep"),
                 (raw(b"[" * 100_000), "nested more than 32 levels deep"),
                 (raw(b'{"headlines": ["\xff\xfe"]}'), "not UTF-8"),
                 (raw(b'{"headlines": ["a"]} trailing'), "not valid JSON: Extra data")]
        for kwargs, needle in cases:
            r = c.post("/analyze", **kwargs)
            assert r.status_code == 422 and needle in r.json()["detail"], (kwargs, r.text)
            assert r.json()["errors"] and all({"loc", "msg", "type"} <= set(e) for e in r.json()["errors"])
        # surrogate PAIRS are real characters (an emoji): accepted and echoed as such
        r = c.post("/analyze", **raw(b'{"headlines": ["rally \\ud83d\\ude80"]}'))
        assert r.status_code == 200 and r.json()["results"][0]["text"] == "rally \U0001f680"
        r = c.post("/analyze", content=b'{"headlines": ["a"]}', headers={"content-type": "text/plain"})
        assert r.status_code == 415 and "send Content-Type: application/json (got text/plain)" in r.json()["detail"]
        r = c.post("/analyze", content=b'{"headlines": ["a"]}')
        assert r.status_code == 415 and "(got none)" in r.json()["detail"]
        r = c.get("/analyze")
        assert r.status_code == 405 and r.headers["allow"] == "POST" and "allowed: POST" in r.json()["detail"]
        for path in ("/ready", "/health", "/metrics"):
            r = c.post(path)
            assert r.status_code == 405 and r.headers["allow"] == "GET", path
        r = c.request("BREW", "/analyze")
        assert r.status_code == 405 and "method BREW not allowed on /analyze" in r.json()["detail"]
        assert "no such endpoint /x; try POST /analyze" in c.get("/x").json()["detail"]


def test_request_size_limit_is_413_naming_it():
    s = FinGPTSettings(FINGPT_MODE="lexicon", FINGPT_MAX_BATCH=2, FINGPT_MAX_CHARS=20, MAX_REQUEST_BYTES=1024)
    with TestClient(create_app(s)) as c:
        r = c.post("/analyze", json={"headlines": ["x" * 2000]})
        assert r.status_code == 413
        assert r.json() == {"detail": "request body is 2018 bytes, over the 1024-byte limit (MAX_REQUEST_BYTES)"}

        def chunks():  # no Content-Length: the limit holds for a streamed body too
            yield b'{"headlines": ["'
            for _ in range(100):
                yield b"y" * 100
            yield b'"]}'

        r = c.post("/analyze", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "over the 1024-byte limit (MAX_REQUEST_BYTES)" in r.json()["detail"]
        assert c.post("/analyze", json={"headlines": ["fine"]}).status_code == 200
        assert 'fingpt_requests_total{endpoint="/analyze",status="413"} 2.0' in c.get("/metrics").text
    with pytest.raises(ValueError, match="MAX_REQUEST_BYTES=1024 is below 24896"):
        FinGPTSettings(FINGPT_MODE="lexicon", FINGPT_MAX_CHARS=64, FINGPT_MAX_BATCH=32, MAX_REQUEST_BYTES=1024)


def test_openapi_declares_every_status_with_its_body():
    app = create_app(FinGPTSettings(FINGPT_MODE="lexicon", FINGPT_MAX_BATCH=4, FINGPT_MAX_CHARS=50))
    doc = app.openapi()
    ref = lambda op, code: op["responses"][code]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]  # noqa: E731
    analyze = doc["paths"]["/analyze"]["post"]
    assert {c: ref(analyze, c) for c in ("200", "413", "415", "422", "503")} == {
        "200": "AnalyzeResponse", "413": "ErrorBody", "415": "ErrorBody", "422": "ValidationErrorBody", "503": "UnavailableBody"}
    assert "Retry-After" in analyze["responses"]["503"]["headers"]
    body = doc["components"]["schemas"]["AnalyzeRequest"]
    assert body["additionalProperties"] is False
    assert body["properties"]["headlines"]["maxItems"] == 4
    assert body["properties"]["headlines"]["items"] == {"type": "string", "minLength": 1, "maxLength": 50}
    ready = doc["paths"]["/ready"]["get"]
    assert ref(ready, "200") == "ReadyBody" and ref(ready, "503") == "NotReadyBody"
    assert list(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == [
        "text/plain; version=1.0.0; charset=utf-8"]


def test_settings_errors():
    with pytest.raises(ValueError, match="FINGPT_BASE_MODEL"):
        FinGPTSettings(FINGPT_MODE="model")
    with pytest.raises(ValueError, match="FINGPT_MODE"):
        FinGPTSettings(FINGPT_MODE="gpu")


def test_model_mode_loads_base_and_lora_adapter(tiny_model, monkeypatch):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    s = FinGPTSettings(FINGPT_MODE="model", FINGPT_BASE_MODEL=tiny_model["base"], FINGPT_ADAPTER=tiny_model["adapter"])
    with TestClient(create_app(s)) as c:
        assert c.get("/health").json()["status"] == "alive"
        info = wait_ready(c)
        assert info["adapter"] == tiny_model["adapter"] and info["device"] in ("cpu", "cuda")
        backend = c.app.state.backend
        assert isinstance(backend.model.model, PeftModel)  # the adapter is really applied
        r = c.post("/analyze", json={"headlines": HEADLINES})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        assert [x["text"] for x in res] == HEADLINES
        assert all(x["label"] in LABELS and 1 / 3 <= x["score"] <= 1 for x in res)
        # batch answer == one-by-one answer (left padding handled)
        single = [c.post("/analyze", json={"headlines": [h]}).json()["results"][0] for h in HEADLINES]
        assert [x["label"] for x in single] == [x["label"] for x in res]
        assert [x["score"] for x in single] == pytest.approx([x["score"] for x in res], abs=1e-3)
        assert "fingpt_model_loaded 1.0" in c.get("/metrics").text
    # the adapter changes the scores: compare with the bare base model
    bare = FinGPTSettings(FINGPT_MODE="model", FINGPT_BASE_MODEL=tiny_model["base"])
    with TestClient(create_app(bare)) as c:
        wait_ready(c)
        plain = c.post("/analyze", json={"headlines": HEADLINES}).json()["results"]
    assert [x["score"] for x in plain] != [x["score"] for x in res]


def test_model_load_failure_keeps_not_ready(tmp_path):
    s = FinGPTSettings(FINGPT_MODE="model", FINGPT_BASE_MODEL=str(tmp_path / "missing"))
    with TestClient(create_app(s)) as c:
        end = time.time() + 60
        while c.get("/ready").json().get("status") == "loading" and time.time() < end:
            time.sleep(0.1)
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["status"] == "failed"
        r = c.post("/analyze", json={"headlines": ["x"]})
        assert r.status_code == 503 and "failed to load" in r.json()["detail"]
        assert c.get("/health").status_code == 200
        assert "fingpt_model_loaded 0.0" in c.get("/metrics").text


def test_stuck_model_answers_503_within_the_deadline_then_recovers(tiny_model, monkeypatch):
    """A forward pass that hangs (a wedged GPU) costs one request its deadline; the next fail fast; it then recovers."""
    import threading

    from fingpt_service import server

    frozen, release = threading.Event(), threading.Event()
    real = server.Backend._run

    def run(self, texts):
        if frozen.is_set():
            release.wait(60)
        return real(self, texts)

    monkeypatch.setattr(server.Backend, "_run", run)
    s = FinGPTSettings(FINGPT_MODE="model", FINGPT_BASE_MODEL=tiny_model["base"], FINGPT_DEADLINE_SECONDS=0.5)
    body = {"headlines": HEADLINES[:1]}
    with TestClient(create_app(s)) as c:
        wait_ready(c)
        assert c.post("/analyze", json=body).status_code == 200
        frozen.set()
        t0 = time.monotonic()
        r = c.post("/analyze", json=body)
        first = time.monotonic() - t0
        assert r.status_code == 503 and r.json()["dependency"] == "model", r.text
        assert "did not answer within the 0.5s deadline (FINGPT_DEADLINE_SECONDS)" in r.json()["detail"]
        assert r.headers["retry-after"] == "1"
        assert first < 0.5 + 5, first  # the deadline, not the 60 s hang (slack for a busy machine)
        time.sleep(0.3)  # the stuck batch is now older than the deadline: no one waits for it any more
        t0 = time.monotonic()
        r = c.post("/analyze", json=body)
        assert r.status_code == 503 and "busy on one batch" in r.json()["detail"], r.text
        assert time.monotonic() - t0 < 0.5, "a request waited behind the stuck batch"
        frozen.clear()
        release.set()
        end, r = time.monotonic() + 30, None
        while time.monotonic() < end:
            r = c.post("/analyze", json=body)
            if r.status_code == 200:
                break
            time.sleep(0.05)
        assert r is not None and r.status_code == 200, r.text
