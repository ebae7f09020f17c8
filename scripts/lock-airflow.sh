#!/usr/bin/env bash
# Resolve the Airflow images' lock with uv and write it into app/requirements/ (run after changing airflow.txt or
# airflow-test.txt; scripts/test-python.sh refuses a lock that disagrees with its inputs):
#   airflow.lock       apache-airflow[extras]==<release> and airflow.txt, every transitive package pinned with its
#                      hashes, for CPython 3.11 on manylinux x86_64 (the image's); the three Airflow Dockerfiles and the
#                      pipeline test venv install it. It stands in for Airflow's published constraints.
#   airflow-test.lock  airflow-test.txt (pytest, ...) resolved with airflow.lock as constraints: layered on it.
# Needs uv (UV=..., or the one scripts/test-python.sh bootstraps into .venvs/.tools) and PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV="${UV:-$(command -v uv || echo "$ROOT/.venvs/.tools/bin/uv")}"
[[ -x "$UV" ]] || { echo "lock-airflow: uv not found: run scripts/test-python.sh --venvs-only once, or set UV" >&2; exit 1; }
cd "$ROOT/app/requirements"
common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --quiet)
# --upgrade: a full re-resolve; without it, uv keeps the versions already in the lock where the inputs allow.
"$UV" pip compile "${common[@]}" "$@" airflow.txt -o airflow.lock
"$UV" pip compile "${common[@]}" "$@" airflow-test.txt -c airflow.lock -o airflow-test.lock
echo "lock-airflow: $(grep -c '^[a-z0-9]' airflow.lock) packages in airflow.lock, $(grep -c '^[a-z0-9]' airflow-test.lock) in airflow-test.lock"
