"""Peak memory of the pipeline's server processes, measured here, beside the memory the stacks give each pod.

Runs each service's real command from its test venv (scripts/test-python.sh builds them) on loopback with local
stand-ins for its backends (sqlite for the metadata stores), waits until it is ready, drives it a little, and samples
the proportional set size (PSS, from /proc/<pid>/smaps_rollup) of its whole process tree every 0.25 s. PSS counts
pages shared between gunicorn/uvicorn workers once, which is what a cgroup memory limit sees most closely.

    .venvs/pipeline/bin/python bench/memory_bench.py            # all services
    .venvs/pipeline/bin/python bench/memory_bench.py mlflow     # one

Writes bench/results/memory.json and memory.md. A report, not a test: the figures size Pulumi.<stack>.yaml.
Loopback only; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import yaml

from benchlib import free_port, pss_mib, tree

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".venvs"
APP = ROOT / "app"


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@dataclass
class Service:
    name: str
    pod: str  # the config key prefix of the pod that runs it (Pulumi.yaml <pod>Memory)
    venv: str
    command: Callable[[Path, int], list[str]]
    env: Callable[[Path, int], dict[str, str]] = lambda tmp, port: {}
    setup: list[Callable[[Path, int], list[str]]] = field(default_factory=list)
    ready: Callable[[int], str] | None = None  # URL that answers 200 once ready
    settle_seconds: float = 20.0  # for processes without an HTTP endpoint
    exercise: Callable[[int], None] = lambda port: None
    needs_redis: bool = False  # a redis-server on loopback; its port reaches env() as BENCH_REDIS_PORT
    stacks: tuple[str, ...] = ("dev", "gpu")  # the stacks that run it this way (headroom is reported for these)
    oneshot: bool = False  # a task that runs to completion: sampled until it exits (must exit 0)


def airflow_env(tmp: Path, _port: int) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(tmp / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(APP / "airflow" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "FX_DATA_SOURCE": "sample",
    }


def task_env(tmp: Path, _port: int) -> dict[str, str]:
    """A pipeline task run by hand (python -m fx_pipeline), on a year of seeded sample candles."""
    return {
        "FX_DATA_SOURCE": "sample",
        "FX_DATA_DIR": str(tmp / "data"),
        "FX_HISTORY_HOURS": "8760",
        "INSTRUMENTS": "USD_SGD",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
    }


def celery_env(concurrency: int) -> Callable[[Path, int], dict[str, str]]:
    def env(tmp: Path, port: int) -> dict[str, str]:
        return {
            **airflow_env(tmp, port),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{os.environ['BENCH_REDIS_PORT']}/1",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+sqlite:///{tmp}/results.db",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
        }

    return env


def mlflow_exercise(port: int) -> None:
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    for i in range(20):
        body = json.dumps({"name": f"bench-{i}"}).encode()
        req = urllib.request.Request(f"{base}/experiments/create", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        urllib.request.urlopen(f"{base}/experiments/search?max_results=50", timeout=10).read()


def mlflow_command(tmp: Path, port: int) -> list[str]:
    """The server flags of components/apps/mlflow.ts, with sqlite and local folders for Postgres and the PVC."""
    return ["mlflow", "server", "--host=127.0.0.1", f"--port={port}", "--workers=1",
            f"--backend-store-uri=sqlite:///{tmp}/mlflow.db", "--serve-artifacts",
            f"--artifacts-destination={tmp}/artifacts", f"--expose-prometheus={tmp}/prom"]


SERVICES = [
    Service(
        "mlflow server (--workers 1)", "mlflow", "mlflow",
        mlflow_command,
        # As components/apps/mlflow.ts runs it: without MLflow 3's server-side job runner.
        env=lambda tmp, port: {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        ready=lambda port: f"http://127.0.0.1:{port}/health",
        exercise=mlflow_exercise,
    ),
    Service(
        "mlflow server, job runner on (MLflow 3 default)", "mlflow", "mlflow",
        mlflow_command,
        ready=lambda port: f"http://127.0.0.1:{port}/health",
        exercise=mlflow_exercise,
        stacks=(),  # for comparison: what MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false saves
    ),
    *[
        Service(
            f"airflow api-server ({n} worker{'s' if n > 1 else ''}, airflowApiWorkers={n})", "airflowWebserver",
            "pipeline",
            lambda tmp, port: ["airflow", "api-server", "--port", str(port)],
            env=lambda tmp, port, n=n: {**airflow_env(tmp, port), "AIRFLOW__API__WORKERS": str(n)},
            setup=[lambda tmp, port: ["airflow", "db", "migrate"]],
            ready=lambda port: f"http://127.0.0.1:{port}/api/v2/monitor/health",
            stacks=("dev",) if n == 1 else ("gpu",),
        )
        for n in (1, 2)
    ],
    Service(
        "airflow scheduler (CeleryExecutor)", "airflowScheduler", "pipeline",
        lambda tmp, port: ["airflow", "scheduler"],
        env=celery_env(4),
        setup=[lambda tmp, port: ["airflow", "db", "migrate"]],
        settle_seconds=45,
        needs_redis=True,
    ),
    Service(
        "airflow dag-processor", "airflowDagProcessor", "pipeline",
        lambda tmp, port: ["airflow", "dag-processor"],
        env=airflow_env,
        setup=[lambda tmp, port: ["airflow", "db", "migrate"]],
        settle_seconds=45,
    ),
    Service(
        "airflow celery worker (concurrency 4, as deployed)", "airflowWorker", "pipeline",
        lambda tmp, port: ["airflow", "celery", "worker"],
        env=celery_env(4),
        setup=[lambda tmp, port: ["airflow", "db", "migrate"]],
        settle_seconds=40,
        needs_redis=True,
    ),
    Service(
        "training task (python -m fx_pipeline train, 8760 candles)", "airflowWorker", "pipeline",
        lambda tmp, port: ["python", "-m", "fx_pipeline", "train"],
        env=task_env,
        setup=[lambda tmp, port: ["python", "-m", "fx_pipeline", "collect"],
               lambda tmp, port: ["python", "-m", "fx_pipeline", "features"]],
        oneshot=True,
    ),
    Service(
        "airflow triggerer", "airflowTriggerer", "pipeline",
        lambda tmp, port: ["airflow", "triggerer"],
        env=airflow_env,
        setup=[lambda tmp, port: ["airflow", "db", "migrate"]],
        settle_seconds=30,
    ),
]


def configured_memory() -> dict[str, dict[str, str]]:
    """<pod>Memory per stack: Pulumi.yaml defaults (gpu) and Pulumi.dev.yaml overrides (dev)."""
    decls = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    out: dict[str, dict[str, str]] = {}
    for key, d in decls.items():
        if key.endswith("Memory"):
            pod = key[: -len("Memory")]
            out[pod] = {"gpu": d["default"], "dev": dev.get(f"fx-ml-pipeline:{key}", d["default"])}
    return out


def mib(q: str) -> float:
    return float(q[:-2]) * (1024 if q.endswith("Gi") else 1)


def measure(svc: Service) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="fx-mem-"))
    port = free_port()
    bin_dir = VENVS / svc.venv / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **svc.env(tmp, port)}
    proc = None
    try:
        for step in svc.setup:
            subprocess.run(step(tmp, port), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=300, cwd=tmp)
        log = open(tmp / "server.log", "wb")
        # cwd: MLflow puts a sqlite-tracked run's artifacts under ./mlruns.
        proc = subprocess.Popen(svc.command(tmp, port), env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=tmp)
        peak, start = 0.0, time.time()
        if svc.oneshot:
            while proc.poll() is None:
                if time.time() - start > 600:
                    raise RuntimeError(f"{svc.name} ran over 600 s")
                peak = max(peak, pss_mib(proc.pid))
                time.sleep(0.1)
            if proc.returncode != 0:
                raise RuntimeError(f"{svc.name} failed; log: {(tmp / 'server.log').read_text()[-2000:]}")
            return {"peak_pss_mib": round(peak, 1), "processes": 1, "seconds": round(time.time() - start, 1)}
        if svc.ready:
            url = svc.ready(port)
            while not http_ok(url):
                if proc.poll() is not None or time.time() - start > 180:
                    raise RuntimeError(f"{svc.name} did not become ready; log: {(tmp / 'server.log').read_text()[-2000:]}")
                peak = max(peak, pss_mib(proc.pid))
                time.sleep(0.25)
            svc.exercise(port)
        deadline = time.time() + (5 if svc.ready else svc.settle_seconds)
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{svc.name} exited; log: {(tmp / 'server.log').read_text()[-2000:]}")
            peak = max(peak, pss_mib(proc.pid))
            time.sleep(0.25)
        return {"peak_pss_mib": round(peak, 1), "processes": len(tree(proc.pid)),
                "seconds": round(time.time() - start, 1)}
    finally:
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def start_redis(tmp: Path) -> subprocess.Popen:
    port = free_port()
    os.environ["BENCH_REDIS_PORT"] = str(port)
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc


def main(argv: list[str]) -> int:
    wanted = [s for s in SERVICES if not argv or any(a in s.name for a in argv)]
    redis_dir = Path(tempfile.mkdtemp(prefix="fx-mem-redis-"))
    redis = start_redis(redis_dir) if any(s.needs_redis for s in wanted) else None
    limits = configured_memory()
    rows = []
    for svc in wanted:
        print(f"measuring {svc.name} ...", flush=True)
        try:
            r = measure(svc)
        except Exception as e:  # noqa: BLE001 - a failed measurement is reported, not hidden
            r = {"error": str(e).splitlines()[0][:300]}
        lim = limits[svc.pod]
        r |= {"service": svc.name, "pod_memory_dev": lim["dev"], "pod_memory_gpu": lim["gpu"]}
        if "peak_pss_mib" in r:
            r["headroom_pct"] = {st: round(100 * (1 - r["peak_pss_mib"] / mib(lim[st])), 1) for st in svc.stacks}
        print(f"  {r}", flush=True)
        rows.append(r)
    if redis:
        redis.terminate()
        redis.wait(timeout=10)
    shutil.rmtree(redis_dir, ignore_errors=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "python": sys.version.split()[0], "results": rows}
    (out / "memory.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Peak memory of the server processes", "",
             f"{report['when']}, {report['cpus']} CPUs; PSS of the whole process tree, idle start plus a little "
             "traffic, sqlite stand-ins for the metadata stores (bench/memory_bench.py).", "",
             "| service | peak PSS MiB | processes | pod memory dev | pod memory gpu | headroom where it runs so |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['service']} | not measured: {r['error']} | | {r['pod_memory_dev']} | "
                         f"{r['pod_memory_gpu']} | |")
        else:
            headroom = ", ".join(f"{st} {pct}%" for st, pct in r["headroom_pct"].items()) or "not deployed (reference)"
            lines.append(f"| {r['service']} | {r['peak_pss_mib']} | {r['processes']} | {r['pod_memory_dev']} | "
                         f"{r['pod_memory_gpu']} | {headroom} |")
    (out / "memory.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
