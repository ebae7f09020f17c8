"""Runs the schemathesis CLI (every check, positive and negative data, fixed seed, bounded example count) against
a live service's OpenAPI document and returns its JSON report (importable: tests/conftest.py puts this folder on
sys.path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SEED = 17


def run_schemathesis(server, tmp_path: Path, max_examples: int, timeout: float = 600) -> dict:
    report = tmp_path / "schemathesis.json"
    cli = Path(sys.executable).with_name("schemathesis")
    argv = [str(cli), "run", f"{server.base}/openapi.json", "--checks", "all", "--mode", "all",
            "--max-examples", str(max_examples), "--seed", str(SEED), "--workers", "1",
            "--request-timeout", "10", "--report", "json", "--report-json-path", str(report)]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    if not report.exists():
        raise server.fail(f"schemathesis wrote no report (exit {proc.returncode}):\n{proc.stdout[-6000:]}"
                          f"\n{proc.stderr[-3000:]}")
    data = json.loads(report.read_text())
    cases = data["test_cases"]
    print(f"\nschemathesis {server.name}: {cases['generated']} test cases over {data['operations']['tested']} "
          f"operations, {cases['with_failures']} with failures, {len(data['errors'])} errors, "
          f"{data['running_time']:.1f}s, seed {SEED}, max examples {max_examples}")
    if proc.returncode != 0 or data["failures"] or data["errors"]:
        raise server.fail(f"schemathesis found problems (exit {proc.returncode}):\n{proc.stdout[-10000:]}")
    return data
