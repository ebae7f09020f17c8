"""Property-based API test: schemathesis against fx-fastapi's own OpenAPI document, on the image's server command,
with a real Redis holding features and a registered model (so /predict answers 200, 404, 422, 413 and 415)."""

from datetime import datetime, timezone

from api_helpers import sample_features, train, write_features
from fuzzlib import malformed_http, run_schemathesis
from servers import start_gunicorn


def test_schemathesis_finds_no_server_error_and_no_contract_violation(tmp_path, redis_client, feast_store, mlflow_uri):
    feats = sample_features()
    train(mlflow_uri, feats, n_estimators=20)
    write_features(feast_store, feats, event_timestamp=datetime.now(timezone.utc))
    server = start_gunicorn(tmp_path, workers=1, MAX_REQUEST_BYTES=4096)
    try:
        server.wait_ready("/health")
        report = run_schemathesis(server, tmp_path, max_examples=200)
        assert report["operations"]["tested"] == 4
        assert report["test_cases"]["generated"] >= 150
        assert report["valid_rates"]["POST /predict"]["fuzzing"]["accepted"] > 0  # some requests were valid
        print(malformed_http(server, "/predict", "/health", 4096))
    finally:
        out = server.stop()
    assert "Traceback" not in out, out[-6000:]
