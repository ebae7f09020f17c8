"""Benchmark POST /predict of fx-fastapi against real Redis on loopback, at fixed (open-loop) request rates.

Sets up everything locally: redis-server on a free 127.0.0.1 port, a model trained on sample candles and
registered in a sqlite MLflow registry, features written through Feast's online write path, and the image's
command (gunicorn + uvicorn workers, gunicorn.conf.py). Then fires requests at each rate for a bounded time
and reports client-side p50/p99 latency and achieved throughput.

Run with the fastapi test venv (scripts/test-python.sh fastapi creates it):
    .venvs/fastapi/bin/python bench/predict_bench.py --rates 50 100 200 --duration 10
Results: bench/results/predict.json and bench/results/predict.md. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

from benchlib import PeakSampler, free_port

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
SERVICE = APP / "fastapi_service"


def wait_http(url: str, timeout: float = 90) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not healthy after {timeout}s")


def prepare(tmp: Path, redis_port: int) -> dict:
    os.environ.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_port), FEAST_REDIS_DB="0")
    os.environ.pop("REDIS_PASSWORD", None)
    from fx_pipeline import feast_store
    from fx_pipeline.features import build_features, latest_rows
    from fx_pipeline.sample import sample_candles
    from fx_pipeline.train import train_and_register

    uri = f"sqlite:///{tmp}/mlflow.db"
    feats = build_features(sample_candles("USD_SGD", 2000, end=datetime.now(timezone.utc)))
    res = train_and_register(feats, model_name="fx-usdsgd-predictor", tracking_uri=uri)
    repo = tmp / "feast_repo"
    shutil.copytree(APP / "feast_repo", repo)
    store = feast_store.load_store(repo, registry_path=f"sqlite:///{tmp}/registry.db")
    feast_store.apply(store, repo)
    latest = latest_rows(feats)
    latest["event_timestamp"] = datetime.now(timezone.utc)
    feast_store.write_online(store, latest)
    return {"tracking_uri": uri, "model_version": res.version}


async def run_rate(base: str, rate: float, duration: float, timeout: float) -> dict:
    n = int(rate * duration)
    lat: list[float] = []
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        async def one():
            t0 = time.perf_counter()
            try:
                r = await client.post("/predict", json={"instrument": "USD_SGD"})
                key = str(r.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            lat.append(time.perf_counter() - t0)
            statuses[key] = statuses.get(key, 0) + 1

        start = time.perf_counter()
        tasks = []
        for i in range(n):  # open loop: request i is sent at start + i/rate whatever the server does
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + timeout + 5)
        elapsed = time.perf_counter() - start
    a = np.array(lat) * 1000
    ok = statuses.get("200", 0)
    return {"target_rps": rate, "duration_s": duration, "requests": n, "ok": ok, "statuses": statuses,
            "throughput_rps": round(ok / elapsed, 1), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p90_ms": round(float(np.percentile(a, 90)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", type=float, nargs="+", default=[50, 100, 200])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per rate (max 60)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    duration = min(args.duration, 60.0)
    tmp = Path(tempfile.mkdtemp(prefix="fx-bench-"))
    redis_port, api_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                                       "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        os.chdir(tmp)  # MLflow puts a sqlite-tracked run's artifacts under ./mlruns: keep them in the scratch folder
        info = prepare(tmp, redis_port)
        env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{api_port}", "WEB_CONCURRENCY": str(args.workers),
               "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"), "MLFLOW_TRACKING_URI": info["tracking_uri"],
               "INSTRUMENTS": "USD_SGD", "PYTHONPATH": str(SERVICE), "LOG_LEVEL": "warning"}
        gunicorn = Path(sys.executable).with_name("gunicorn")
        procs.append(subprocess.Popen([str(gunicorn), "-c", str(SERVICE / "gunicorn.conf.py"), "app.main:app"],
                                      cwd=SERVICE, env=env))
        base = f"http://127.0.0.1:{api_port}"
        wait_http(f"{base}/health")
        asyncio.run(run_rate(base, 50, 2, 2))  # warm-up: every worker loaded and its pools open
        results = []
        # Peak PSS of gunicorn and its workers while under load: what the pod's memory limit must hold.
        with PeakSampler(procs[-1].pid) as memory:
            for rate in args.rates:
                r = asyncio.run(run_rate(base, rate, duration, 5.0))
                print(f"{rate:>6.0f} req/s target: {r['throughput_rps']:>6.1f} ok/s  p50 {r['p50_ms']:.2f} ms  "
                      f"p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms  statuses {r['statuses']}", flush=True)
                results.append(r)
        print(f"peak PSS of gunicorn + {args.workers} workers under load: {memory.peak:.1f} MiB", flush=True)
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
              "cpus": os.cpu_count(), "python": platform.python_version(), "gunicorn_workers": args.workers,
              "client": "httpx.AsyncClient, open loop, same machine", "model_version": info["model_version"],
              "target": "p99 < 10 ms at 200 req/s", "peak_pss_mib": round(memory.peak, 1), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# /predict benchmark", "", f"{report['when']}, {report['cpus']} CPUs, {args.workers} gunicorn workers, "
             "real Redis on loopback, client on the same machine.", "",
             "| target req/s | ok req/s | p50 ms | p90 ms | p99 ms | max ms | statuses |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['target_rps']:.0f} | {r['throughput_rps']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
              f"{r['max_ms']} | {r['statuses']} |" for r in results]
    lines += ["", f"Peak PSS of gunicorn and its {args.workers} workers under this load: {memory.peak:.1f} MiB "
              "(the pod's memory: fastapiMemory in Pulumi.yaml / Pulumi.dev.yaml)."]
    (args.out / "predict.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
