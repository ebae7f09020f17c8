"""Fault injection on a real redis-server this test starts: under a bounded open-loop load on fx-fastapi (gunicorn,
2 workers), Redis is stopped and restarted, then frozen (SIGSTOP) and thawed (SIGCONT).

What must hold: every answer is 200 or 503 (never 500, never a dropped connection); while Redis is gone or frozen,
/predict answers 503 naming Redis within the deadline, and requests do not pile up behind stuck connections (after
the first deadline each worker fails fast); the service serves 200 again soon after Redis is back. The figures are
printed (run with -s to see them); bounds are the deadline plus slack for a busy 2-core machine.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import threading
import time
from datetime import datetime, timezone

import httpx
import redis

from api_helpers import sample_features, train, write_features
from liveserver import free_port
from servers import start_gunicorn

DEADLINE = 0.25     # REQUEST_DEADLINE_SECONDS for the service under test
RETRY = 0.25        # REDIS_RETRY_SECONDS
RATE = 40           # requests per second, open loop
WORKERS = 2
SLACK = 1.0         # scheduling slack on a busy 2-core machine, on top of the deadline
RECOVERY_BOUND = 3.0  # seconds from Redis answering again to the first 200 (design: retry + deadline = 0.5 s)


class RedisProcess:
    def __init__(self, tmp_path):
        self.dir, self.port = tmp_path / "redis", free_port()
        self.dir.mkdir()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if self.client().ping():
                    return time.monotonic()
            except redis.RedisError:
                time.sleep(0.02)
        raise AssertionError(f"redis-server on port {self.port} did not answer within 60s")

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)  # by its PID, not by name


class Load:
    """Open-loop load: request i is sent at start + i/RATE whatever the server does; every outcome is recorded."""

    def __init__(self, base):
        self.base, self.records, self._stop = base, [], threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self):
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=20)
        async with httpx.AsyncClient(base_url=self.base, timeout=10, limits=limits) as client:
            async def one(sent):
                try:
                    r = await client.post("/predict", json={"instrument": "USD_SGD"})
                    status = r.status_code
                    dep = r.json().get("dependency") if status == 503 else None
                except httpx.HTTPError as exc:
                    status, dep = type(exc).__name__, None
                self.records.append((sent, time.monotonic() - sent, status, dep))

            tasks, start, i = [], time.monotonic(), 0
            while not self._stop.is_set():
                delay = start + i / RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(time.monotonic())))
                i += 1
            await asyncio.gather(*tasks)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)

    def between(self, t0, t1):
        return [r for r in self.records if t0 <= r[0] < t1]


def outage_figures(load, t0, t1, label):
    rows = load.between(t0 + 0.1, t1)  # requests sent once the fault is in place
    # answered by now: requests still waiting at t1 are the pile-up this test exists to catch
    expected = RATE * (t1 - t0 - 0.1)
    assert len(rows) >= 0.8 * expected, f"{label}: only {len(rows)} of ~{expected:.0f} requests answered: pile-up"
    bad = [r for r in rows if r[2] != 503 or r[3] != "redis"]
    assert not bad, f"{label}: answers other than 503 naming redis: {bad[:5]}"
    lat = sorted(r[1] for r in rows)
    waited = [x for x in lat if x > DEADLINE * 0.8]  # those that spent (most of) the deadline on Redis
    fig = {"requests": len(rows), "p50_ms": round(1000 * lat[len(lat) // 2], 1),
           "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 1), "max_ms": round(1000 * lat[-1], 1),
           "waited_deadline": len(waited)}
    print(f"\n{label}: {fig}")
    assert lat[-1] < DEADLINE + SLACK, f"{label}: a 503 took {lat[-1]:.3f}s (deadline {DEADLINE}s): {fig}"
    # No pile-up: once a worker has seen Redis miss the deadline it fails fast; only requests already in flight
    # then (about RATE * DEADLINE per worker) and the breaker's probes' companions may spend the deadline.
    assert len(waited) <= WORKERS * RATE * DEADLINE + 10, f"{label}: requests queued on Redis: {fig}"
    return fig


def recovery_seconds(load, back_at, label):
    ok = [r for r in load.records if r[0] >= back_at - 1 and r[2] == 200 and r[0] + r[1] >= back_at]
    assert ok, f"{label}: no 200 after Redis came back"
    first = min(r[0] + r[1] for r in ok) - back_at
    print(f"{label}: first 200 {first * 1000:.0f} ms after Redis answered again")
    assert first < RECOVERY_BOUND, f"{label}: recovery took {first:.2f}s"
    return first


def test_redis_stopped_then_frozen_under_load(tmp_path, redis_client, feast_store, mlflow_uri):
    feats = sample_features()
    train(mlflow_uri, feats, n_estimators=20)
    write_features(feast_store, feats, event_timestamp=datetime.now(timezone.utc))
    rs = RedisProcess(tmp_path)
    rs.start()
    snapshot = {k: redis_client.dump(k) for k in redis_client.keys()}  # the features Feast wrote, to restore

    def restore():
        c = rs.client()
        for k, v in snapshot.items():
            c.restore(k, 0, v, replace=True)
        c.close()

    restore()
    server = start_gunicorn(tmp_path, workers=WORKERS, REDIS_PORT=rs.port, REQUEST_DEADLINE_SECONDS=DEADLINE,
                            REDIS_RETRY_SECONDS=RETRY, REDIS_MAX_CONNECTIONS=8)
    try:
        server.wait_ready("/health", streak=10)  # fresh connections: both workers ready
        with Load(server.base) as load:
            time.sleep(2)
            baseline = [r for r in load.records]
            assert baseline and all(r[2] == 200 for r in baseline), baseline[:5]

            t_stop = time.monotonic()
            rs.stop()
            time.sleep(3)
            stopped = outage_figures(load, t_stop, time.monotonic(), "Redis stopped")
            back = rs.start()
            restore()
            time.sleep(2)
            rec_stop = recovery_seconds(load, back, "after restart")

            t_freeze = time.monotonic()
            rs.signal(signal.SIGSTOP)
            time.sleep(3)
            t_thaw = time.monotonic()
            frozen = outage_figures(load, t_freeze, t_thaw, "Redis frozen (SIGSTOP)")
            rs.signal(signal.SIGCONT)
            time.sleep(2)
            rec_freeze = recovery_seconds(load, t_thaw, "after SIGCONT")
        statuses = {r[2] for r in load.records}
        assert statuses <= {200, 503}, f"answers other than 200/503: {statuses}"
        clients = rs.client().info("clients")["connected_clients"]
        print(f"fault test: {len(load.records)} requests at {RATE}/s, {WORKERS} workers, deadline {DEADLINE}s; "
              f"stopped {stopped}, recovery {rec_stop:.3f}s; frozen {frozen}, recovery {rec_freeze:.3f}s; "
              f"Redis clients after: {clients}")
        # bounded pools: at most REDIS_MAX_CONNECTIONS per worker (+ our own client) whatever was abandoned
        assert clients <= WORKERS * 8 + 1
    finally:
        out = server.stop()
        if rs.proc.poll() is None:
            rs.signal(signal.SIGCONT)
            rs.stop()
    assert "Traceback" not in out, out[-6000:]
