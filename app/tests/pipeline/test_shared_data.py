"""Several workers: what one task writes, the next reads on another worker, with no filesystem in common.

Each step runs in a process of its own, as a Celery worker on another node would: its own working directory, HOME and
TMPDIR, and nothing but the environment the stack gives every worker (FEAST_DB_* of the feast database, Redis,
MLflow). The second step must find what the first stored, and no step may leave a file behind for the next.
"""

import json
import os
import subprocess
import sys

STEP = """
import json, sys
from datetime import datetime
from fx_pipeline import tasks
step = sys.argv[1]
now = datetime.fromisoformat(sys.argv[2]) if len(sys.argv) > 2 else None
out = {"collect": lambda: tasks.collect_candles("USD_SGD", now=now), "features": tasks.build_feature_table,
       "materialize": tasks.materialize_online, "train": lambda: tasks.train_model("USD_SGD")}[step]()
print("RESULT " + json.dumps(out, default=str))
"""


def on_worker(name: str, step: str, tmp_path, now: str | None = None) -> dict:
    home = tmp_path / name
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(home)}
    env.pop("FX_DATA_DIR", None)
    r = subprocess.run([sys.executable, "-c", STEP, step, *([now] if now else [])], cwd=home, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_each_step_reads_what_the_step_before_stored_on_another_worker(pipeline_env, redis_env, tmp_path):
    collected = on_worker("worker-0", "collect", tmp_path)
    assert collected["stored"] == collected["fetched"] > 500
    built = on_worker("worker-1", "features", tmp_path)  # reads worker-0's candles
    assert built["rows"] > 400
    materialized = on_worker("worker-2", "materialize", tmp_path)  # worker-1's feature table, via Feast's offline store
    assert materialized["instruments"] == ["USD_SGD"] and redis_env.dbsize() == 1
    trained = on_worker("worker-3", "train", tmp_path)  # reads the same feature table
    assert trained["version"] == "1" and trained["promoted"]
    for w in ("worker-0", "worker-1", "worker-2"):  # nothing handed over through files
        assert sorted(p.name for p in (tmp_path / w).rglob("*") if p.is_file()) == [], w
    # Training leaves only the model's artifacts, in MLflow's default artifact root under the working directory: the
    # test talks to MLflow's database directly; in the stack the MLflow server stores them (--serve-artifacts).
    left = {p.relative_to(tmp_path / "worker-3").parts[0] for p in (tmp_path / "worker-3").rglob("*") if p.is_file()}
    assert left == {"mlruns"}


def test_the_next_collect_tops_up_what_another_worker_stored(pipeline_env, tmp_path):
    # A Thursday noon: the 72 hours before it are all open market (the sample source makes no weekend candles).
    first = on_worker("worker-0", "collect", tmp_path, now="2026-01-15T12:00:00+00:00")
    again = on_worker("worker-1", "collect", tmp_path, now="2026-01-15T13:00:00+00:00")
    assert first["fetched"] > 72 * 3
    assert again["fetched"] == 72  # the top-up window, not the backfill: worker-1 saw worker-0's candles
    assert again["stored"] == first["stored"] + 1  # the one new hour; the 71 it already had merge, not duplicate
