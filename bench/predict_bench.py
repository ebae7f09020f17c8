"""Benchmark POST /predict of fx-fastapi beside Feast's own HTTP feature server (`feast serve`), the anchor, against
the same real Redis on loopback, at the same fixed (open-loop) request rates, in the same run.

Sets up everything locally: redis-server on a free 127.0.0.1 port, a model trained on sample candles and
registered in a sqlite MLflow registry, features written through Feast's online write path, the image's
command (gunicorn + uvicorn workers, gunicorn.conf.py) and `feast serve` with as many workers, reading the same
entity and features (POST /get-online-features). The service loads the registered version over MLflow's REST API as
in the stack (benchlib.RegistryStandIn serves that version's files on loopback: the image has no MLflow client for a
sqlite registry). For each rate, each server in turn gets the load for a bounded time; reported: client-side p50/p99
latency, the server's CPU per request (user+system time of its process tree over the run / requests answered), memory
per worker (PSS), process start to Ready (spawn to the first 200 from /health: Redis answers and the model is
loaded) and to every worker ready, and fx/Feast ratios. The figures go to bench/results/predict.md and the README's
serving table.

Run with the fastapi test venv (scripts/test-python.sh fastapi creates it), with vegeta on PATH as the load generator
(`GOBIN=$HOME/.cache/vegeta go install github.com/tsenart/vegeta/v12@v12.12.0`; without it, Python's httpx client,
whose own CPU and jitter on a 2-core machine add milliseconds to the p99 it reports):
    PATH=$HOME/.cache/vegeta:$PATH .venvs/fastapi/bin/python bench/predict_bench.py --rates 200 400 --duration 10
Results: bench/results/predict.json and bench/results/predict.md. Loopback only; every loop is bounded.
Targets (issue 26): p99 <= 3 ms at 200 req/s and <= 5 ms at 400 req/s on 2 cores; CPU per request <= 1.0 ms and
<= 0.7x Feast's server returning the features alone; worker PSS <= 120 MiB; process start to Ready <= 3 s.

A new replica on a real cluster (schedule, pull, start, Ready) is timed by bench/replica_bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
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

from benchlib import PeakSampler, RegistryStandIn, cpu_seconds, free_port, serving_venv, worker_pss_mib
from fx_pipeline.feature_defs import FEATURE_COLUMNS, FEATURE_VIEW, JOIN_KEY

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
SERVICE = APP / "fastapi_service"


class Server:
    """A server process with its output in a file; readiness waits print that output when they fail."""

    def __init__(self, name: str, argv: list[str], env: dict, cwd: Path, port: int, log_dir: Path) -> None:
        self.name, self.base = name, f"http://127.0.0.1:{port}"
        self.log = (log_dir / f"{name}.log").open("w+b")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-8000:]

    def wait_first(self, path: str, timeout: float = 300) -> float:
        """Seconds from spawn to the first 200 from ``path`` (polled every 10 ms)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.base + path, timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: GET {path} not 200 within {timeout:.0f}s:\n{self.output()}")

    def wait_ready(self, path: str, streak: int, timeout: float = 300) -> float:
        """Seconds from spawn until ``streak`` fresh-connection GETs in a row answered 200 (every worker ready)."""
        end, ok = time.monotonic() + timeout, 0
        while time.monotonic() < end and ok < streak:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                ok = ok + 1 if httpx.get(self.base + path, timeout=2).status_code == 200 else 0
            except httpx.HTTPError:
                ok = 0
            time.sleep(0.02 if ok else 0.1)
        if ok < streak:
            raise RuntimeError(f"{self.name}: GET {path} not ready within {timeout:.0f}s:\n{self.output()}")
        return time.monotonic() - self.started

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


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
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    model_files = Path(download_artifacts(f"models:/fx-usdsgd-predictor/{res.version}", dst_path=str(tmp / "model")))
    tags = dict(MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version("fx-usdsgd-predictor",
                                                                                   res.version).tags)
    registry = RegistryStandIn("fx-usdsgd-predictor", str(res.version), tags, model_files)
    # The stack's registry is Feast's SQL registry on Postgres; the benchmark keeps it in sqlite (read at startup only).
    cfg = repo / "feature_store.yaml"
    cfg.write_text(re.sub(r"(?m)^  path: .*$", f"  path: sqlite:///{tmp}/registry.db", cfg.read_text()))
    # The offline store's settings are read but never used here. FEAST_DB_PORT is left to feast_store's default: Feast
    # parses the port as an integer.
    for var in ("FEAST_DB_USER", "FEAST_DB_PASSWORD", "FEAST_DB_HOST", "FEAST_DB_NAME"):
        os.environ.setdefault(var, "unused")
    store = feast_store.load_store(repo)
    feast_store.apply(store, repo)
    latest = latest_rows(feats)
    latest["event_timestamp"] = datetime.now(timezone.utc)
    feast_store.write_online(store, latest)
    # `feast serve` reads feature_store.yaml itself: give it the same config, ${VAR}s resolved, sqlite registry.
    import yaml

    raw = feast_store.render_config(repo)
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(raw))
    return {"tracking_uri": registry.uri, "registry": registry, "model_version": res.version, "repo": repo}


async def run_rate(base: str, path: str, body: dict, rate: float, duration: float, timeout: float) -> dict:
    n = int(rate * duration)
    lat: list[float] = []
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        async def one():
            t0 = time.perf_counter()
            try:
                r = await client.post(path, json=body)
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


def run_rate_vegeta(vegeta: str, base: str, path: str, body: dict, rate: float, duration: float,
                    timeout: float) -> dict:
    """The same open-loop load from vegeta (Go): its client costs far less CPU and jitter than Python's on 2 cores."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "body.json").write_text(json.dumps(body))
        (Path(d) / "targets.txt").write_text(
            f"POST {base}{path}\nContent-Type: application/json\n@{Path(d) / 'body.json'}\n")
        attack = subprocess.run([vegeta, "attack", f"-rate={rate:g}/1s", f"-duration={duration:g}s",
                                 f"-timeout={timeout:g}s", f"-targets={Path(d) / 'targets.txt'}", "-format=http",
                                 f"-output={Path(d) / 'results.bin'}"], capture_output=True, text=True, check=True)
        del attack
        rep = json.loads(subprocess.run([vegeta, "report", "-type=json", str(Path(d) / "results.bin")],
                                        capture_output=True, text=True, check=True).stdout)
    lat = rep["latencies"]
    statuses = {str(k): v for k, v in rep["status_codes"].items()}
    ok = statuses.get("200", 0)
    ms = lambda ns: round(ns / 1e6, 2)  # noqa: E731
    return {"target_rps": rate, "duration_s": duration, "requests": rep["requests"], "ok": ok, "statuses": statuses,
            "throughput_rps": round(rep["throughput"], 1), "p50_ms": ms(lat["50th"]), "p90_ms": ms(lat["90th"]),
            "p99_ms": ms(lat["99th"]), "max_ms": ms(lat["max"])}


FEAST_BODY = {"features": [f"{FEATURE_VIEW}:{f}" for f in FEATURE_COLUMNS], "entities": {JOIN_KEY: ["USD_SGD"]}}
PREDICT_BODY = {"instrument": "USD_SGD"}


def load(server: "Server", path: str, body: dict, rate: float, duration: float, vegeta: str | None) -> dict:
    cpu0 = cpu_seconds(server.proc.pid)
    if vegeta:
        r = run_rate_vegeta(vegeta, server.base, path, body, rate, duration, 5.0)
    else:
        r = asyncio.run(run_rate(server.base, path, body, rate, duration, 5.0))
    cpu = cpu_seconds(server.proc.pid) - cpu0
    answered = sum(v for k, v in r["statuses"].items() if k.isdigit())
    r["server_cpu_s"] = round(cpu, 3)
    r["cpu_ms_per_request"] = round(1000 * cpu / max(answered, 1), 3)
    return r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", type=float, nargs="+", default=[200, 400])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per rate and server (max 60)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--client", choices=["vegeta", "httpx"], default="vegeta" if shutil.which("vegeta") else "httpx",
                    help="load generator: vegeta (Go, `go install github.com/tsenart/vegeta/v12@v12.12.0`) when on "
                         "PATH, else Python's httpx")
    args = ap.parse_args()
    duration = min(args.duration, 60.0)
    tmp = Path(tempfile.mkdtemp(prefix="fx-bench-"))
    redis_port, api_port, feast_port = free_port(), free_port(), free_port()
    procs: list = []
    load_before = os.getloadavg()
    try:
        redis_proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                                       "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        os.chdir(tmp)  # MLflow puts a sqlite-tracked run's artifacts under ./mlruns: keep them in the scratch folder
        info = prepare(tmp, redis_port)
        env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{api_port}", "WEB_CONCURRENCY": str(args.workers),
               "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"), "MLFLOW_TRACKING_URI": info["tracking_uri"],
               "INSTRUMENTS": "USD_SGD", "PYTHONPATH": str(SERVICE), "LOG_LEVEL": "warning"}
        # The image's package set, not the test venv's (benchlib.serving_venv says why).
        gunicorn = serving_venv(ROOT).with_name("gunicorn")
        api = Server("fx-fastapi", [str(gunicorn), "-c", str(SERVICE / "gunicorn.conf.py"), "app.main:app"],
                     env, SERVICE, api_port, tmp)
        procs.append(api)
        api_first = api.wait_first("/health")
        api_start = api.wait_ready("/health", streak=10)
        print(f"fx-fastapi ({args.workers} workers): first Ready {api_first:.2f}s, every worker {api_start:.1f}s "
              "after spawn", flush=True)
        feast_cli = Path(sys.executable).with_name("feast")
        # --max-requests 0: Feast's default (1000) recycles workers mid-run, which would charge it restarts.
        feast = Server("feast-serve", [str(feast_cli), "-c", str(info["repo"]), "serve", "-h", "127.0.0.1",
                                       "-p", str(feast_port), "-w", str(args.workers), "--no-access-log",
                                       "--max-requests", "0"], {**os.environ}, tmp, feast_port, tmp)
        procs.append(feast)
        feast_first = feast.wait_first("/health")
        feast_start = feast.wait_ready("/health", streak=10)
        print(f"feast serve ({args.workers} workers) ready {feast_start:.1f}s after spawn", flush=True)
        check = httpx.post(feast.base + "/get-online-features", json=FEAST_BODY, timeout=10)
        check.raise_for_status()
        values = {n: v["values"][0] for n, v in zip(check.json()["metadata"]["feature_names"], check.json()["results"])}
        assert all(values.get(f) is not None for f in FEATURE_COLUMNS), f"feast serve returned {values}"
        for srv, path, body in ((api, "/predict", PREDICT_BODY), (feast, "/get-online-features", FEAST_BODY)):
            asyncio.run(run_rate(srv.base, path, body, 50, 2, 2))  # warm-up: every worker's pools open
        results = []
        # Peak PSS of gunicorn and its workers while under load: what the pod's memory limit must hold.
        with PeakSampler(api.proc.pid) as memory:
            for rate in args.rates:
                row = {"target_rps": rate}
                for name, srv, path, body in (("fx", api, "/predict", PREDICT_BODY),
                                              ("feast", feast, "/get-online-features", FEAST_BODY)):
                    r = load(srv, path, body, rate, duration, shutil.which("vegeta") if args.client == "vegeta" else None)
                    row[name] = r
                    print(f"{name:>5} {rate:>6.0f} req/s: {r['throughput_rps']:>6.1f} ok/s  p50 {r['p50_ms']:.2f} ms  "
                          f"p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms  CPU {r['cpu_ms_per_request']:.3f} "
                          f"ms/req  statuses {r['statuses']}", flush=True)
                row["ratio"] = {k: round(row["fx"][k] / row["feast"][k], 2) if row["feast"][k] else None
                                for k in ("p50_ms", "p99_ms", "cpu_ms_per_request")}
                results.append(row)
        mem = {"fx": worker_pss_mib(api.proc.pid), "feast": worker_pss_mib(feast.proc.pid)}
        print(f"peak PSS of gunicorn + {args.workers} workers under load: {memory.peak:.1f} MiB; "
              f"PSS per worker fx {mem['fx']}, feast {mem['feast']}", flush=True)
    finally:
        for p in reversed(procs):
            p.stop()
        redis_proc.terminate()
        redis_proc.wait(timeout=20)
        if "info" in locals():
            info["registry"].close()
        shutil.rmtree(tmp, ignore_errors=True)
    per_worker = {k: round(sum(v) / len(v), 1) if v else None for k, v in mem.items()}
    info.pop("registry", None)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
              "cpus": os.cpu_count(), "niceness": os.nice(0), "loadavg_before": [round(x, 2) for x in load_before],
              "loadavg_after": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
              "gunicorn_workers": args.workers, "duration_s": duration,
              "client": f"{'vegeta attack' if args.client == 'vegeta' else 'httpx.AsyncClient'}, open loop, same machine", "model_version": info["model_version"],
              "targets": "issue 26: p99 <= 3 ms at 200 req/s, <= 5 ms at 400; CPU/request <= 1.0 ms and <= 0.7x Feast; "
                         "worker PSS <= 120 MiB; process start to Ready <= 3 s",
              "startup_s": {"fx": round(api_start, 2), "feast": round(feast_start, 2)},
              "first_ready_s": {"fx": round(api_first, 2), "feast": round(feast_first, 2)},
              "peak_pss_mib": round(memory.peak, 1), "pss_per_worker_mib": per_worker,
              "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict.json").write_text(json.dumps(report, indent=2) + "\n")
    la = report["loadavg_before"]
    lines = ["# /predict benchmark, beside Feast's feature server", "",
             f"{report['when']}, {report['cpus']} CPUs (load average {la[0]} / {la[1]} / {la[2]} before the run, from other "
             f"work on the machine; benchmark processes at niceness {report['niceness']}), "
             f"{args.workers} gunicorn workers each, real Redis on loopback, load from {report['client']}, "
             f"{duration:.0f} s per rate and server. fx = fx-fastapi `POST /predict` (Redis read + XGBoost); "
             f"feast = `feast serve` `POST /get-online-features` for the same entity and the {len(FEATURE_COLUMNS)} "
             "features alone. CPU = user+system time of the server's process tree over the run / requests answered.",
             "",
             "| req/s | fx p50 ms | fx p99 ms | fx CPU ms/req | feast p50 ms | feast p99 ms | feast CPU ms/req "
             "| p50 fx/feast | p99 fx/feast | CPU fx/feast | statuses fx / feast |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in results:
        fx, fe, ra = row["fx"], row["feast"], row["ratio"]
        lines.append(f"| {row['target_rps']:.0f} | {fx['p50_ms']} | {fx['p99_ms']} | {fx['cpu_ms_per_request']} | "
                     f"{fe['p50_ms']} | {fe['p99_ms']} | {fe['cpu_ms_per_request']} | {ra['p50_ms']} | {ra['p99_ms']} | "
                     f"{ra['cpu_ms_per_request']} | {fx['statuses']} / {fe['statuses']} |")
    lines += ["", f"Memory per worker (PSS, after the load): fx {per_worker['fx']} MiB, feast {per_worker['feast']} MiB "
              f"(ratio {round(per_worker['fx'] / per_worker['feast'], 2) if per_worker['fx'] and per_worker['feast'] else '-'}). "
              f"Peak PSS of fx-fastapi's gunicorn and its {args.workers} workers under this load: {memory.peak:.1f} MiB "
              "(the pod's memory: fastapiMemory in Pulumi.yaml / Pulumi.dev.yaml).",
              f"Process start to Ready (spawn to the first 200 from /health: Redis answers, model loaded from the "
              f"registry over HTTP): fx-fastapi {api_first:.2f} s, feast serve {feast_first:.2f} s; to every worker "
              f"ready (10 fresh connections in a row answered 200): fx-fastapi {api_start:.1f} s, feast serve "
              f"{feast_start:.1f} s."]
    (args.out / "predict.md").write_text("\n".join(lines) + "\n")
    write_readme_table(report)
    return 0


README = ROOT / "README.md"
BEGIN, END = "<!-- predict-figures:begin (written by bench/predict_bench.py) -->", "<!-- predict-figures:end -->"


def write_readme_table(report: dict) -> None:
    """The README's serving table, between its markers, from this run (never edited by hand)."""
    per = report["pss_per_worker_mib"]
    la = report["loadavg_before"]
    rows = [f"Measured {report['when'][:10]} on {report['cpus']} shared CPUs (load average {la[0]} before the run), "
            f"{report['gunicorn_workers']} workers each, beside `feast serve` in the same run "
            "(`bench/results/predict.md`):", "",
            "| req/s | fx-fastapi p99 ms | feast p99 ms | fx CPU ms/request | feast CPU ms/request | CPU fx/feast |",
            "|---|---|---|---|---|---|"]
    for row in report["results"]:
        fx, fe = row["fx"], row["feast"]
        rows.append(f"| {row['target_rps']:.0f} | {fx['p99_ms']} | {fe['p99_ms']} | {fx['cpu_ms_per_request']} | "
                    f"{fe['cpu_ms_per_request']} | {row['ratio']['cpu_ms_per_request']} |")
    rows += ["", f"Worker PSS: fx-fastapi {per['fx']} MiB, feast {per['feast']} MiB. Process start to Ready: "
                 f"fx-fastapi {report['first_ready_s']['fx']} s, feast serve {report['first_ready_s']['feast']} s."]
    text = README.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        README.write_text(head + BEGIN + "\n" + "\n".join(rows) + "\n" + END + rest.split(END, 1)[1])


if __name__ == "__main__":
    raise SystemExit(main())
