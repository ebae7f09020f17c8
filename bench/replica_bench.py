"""Time a new fx-fastapi replica on a real cluster: scale the Deployment up by one and split the new pod's way to Ready
into scheduling, image pull, container start and readiness, from the API server's own timestamps and the kubelet's
events. Then scale back. Needs kubectl on PATH with the stack's context; prints JSON and writes
bench/results/replica.json.

    python3 bench/replica_bench.py --context kind-fx-ml --namespace fx-ml --deployment fastapi

The image pull is measured apart (the kubelet's "Pulled" event says how long it took, or that the image was
already present on the node); pick a node without the image (or remove it there) to measure a cold pull.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path


def kubectl(args: argparse.Namespace, *cmd: str) -> str:
    return subprocess.run(["kubectl", "--context", args.context, "-n", args.namespace, *cmd], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def ts(s: str | None) -> float | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else None


def time_new_replica(args: argparse.Namespace) -> dict:
    dep = json.loads(kubectl(args, "get", "deployment", args.deployment, "-o", "json"))
    selector = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
    before = {p["metadata"]["name"] for p in json.loads(kubectl(args, "get", "pods", "-l", selector, "-o", "json"))["items"]}
    replicas = dep["spec"]["replicas"]
    asked = time.time()
    kubectl(args, "scale", "deployment", args.deployment, f"--replicas={replicas + 1}")
    try:
        end = time.monotonic() + args.timeout
        while time.monotonic() < end:
            pods = [p for p in json.loads(kubectl(args, "get", "pods", "-l", selector, "-o", "json"))["items"]
                    if p["metadata"]["name"] not in before]
            ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in p["status"].get("conditions", []))]
            if ready:
                pod = ready[0]
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"no new {args.deployment} pod Ready within {args.timeout}s")
    finally:
        kubectl(args, "scale", "deployment", args.deployment, f"--replicas={replicas}")
    cond = {c["type"]: ts(c.get("lastTransitionTime")) for c in pod["status"]["conditions"]}
    created = ts(pod["metadata"]["creationTimestamp"])
    started = ts(((pod["status"]["containerStatuses"][0].get("state") or {}).get("running") or {}).get("startedAt"))
    events = json.loads(kubectl(args, "get", "events", "--field-selector",
                                f"involvedObject.name={pod['metadata']['name']}", "-o", "json"))["items"]
    pulled = next((e["message"] for e in events if e["reason"] == "Pulled"), "")
    m = re.search(r"in ([0-9.]+m?s)", pulled)
    return {"pod": pod["metadata"]["name"], "node": pod["spec"].get("nodeName"),
            "scale_to_created_s": round(created - asked, 2) if created else None,
            "created_to_scheduled_s": round(cond["PodScheduled"] - created, 2),
            "pull": m.group(1) if m else pulled or "no Pulled event",
            "scheduled_to_container_started_s": round(started - cond["PodScheduled"], 2) if started else None,
            "container_started_to_ready_s": round(cond["Ready"] - started, 2) if started else None,
            "scale_to_ready_s": round(cond["Ready"] - asked, 2),
            "note": "API timestamps have 1 s resolution"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", required=True)
    ap.add_argument("--namespace", default="fx-ml")
    ap.add_argument("--deployment", default="fastapi")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    result = time_new_replica(args)
    out = Path(__file__).resolve().parent / "results" / "replica.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
