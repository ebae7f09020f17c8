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


def test_bad_requests():
    with TestClient(create_app(FinGPTSettings(FINGPT_MODE="lexicon", FINGPT_MAX_BATCH=4, FINGPT_MAX_CHARS=50))) as c:
        cases = [({"json": {"headlines": []}}, "headlines: List should have at least 1 item"),
                 ({"json": {"headlines": ["a"] * 5}}, "at most 4 items"),
                 ({"json": {"headlines": ["x" * 51]}}, "headlines.0: 51 characters, limit 50"),
                 ({"json": {"headlines": ["ok", "  "]}}, "headlines.1: empty headline"),
                 ({"json": {"headlines": "one"}}, "headlines: Input should be a valid list"),
                 ({"json": {"text": ["a"]}}, "headlines: Field required"),
                 ({"content": b"nope", "headers": {"content-type": "application/json"}}, "not valid JSON")]
        for kwargs, needle in cases:
            r = c.post("/analyze", **kwargs)
            assert r.status_code == 422 and needle in r.json()["detail"], (kwargs, r.text)
        assert c.get("/analyze").status_code == 405
        assert c.post("/ready").status_code == 405 and c.post("/health").status_code == 405
        assert "no such endpoint" in c.get("/x").json()["detail"]


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
