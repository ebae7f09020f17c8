#!/usr/bin/env bash
# Build one virtualenv per image from app/requirements/ and run each service's pytest suite.
# Venvs live in .venvs/<name> and are re-created only when their inputs' hash changes.
# A redis-server and a PostgreSQL server (Debian's), each on a free loopback port, serve the suites that need them;
# both are stopped on exit. Postgres holds the Feast SQL registry and the MLflow backend store, as in the stack.
# Usage: scripts/test-python.sh [--venvs-only] [suite ...]   (suites: pipeline fastapi fingpt mlflow; default all)
#   --venvs-only: build (or confirm up to date) the venvs and stop; the jest env-contract test (test/contracts.test.ts)
#   introspects the services' settings with them, so scripts/test.sh runs this before jest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="$ROOT/app"
REQ="$APP/requirements"
VENVS="${VENVS_DIR:-$ROOT/.venvs}"
PYTHON="${PYTHON:-python3.11}"
UV_VERSION="0.13.9"
PYTEST_PINS=(pytest==9.2.0 httpx==0.28.1)
# Property-based API tests of the two HTTP services (tests/*/test_openapi_fuzz.py run the schemathesis CLI).
FUZZ_PINS=(schemathesis==4.32.5 hypothesis==6.170.17)

log() { printf '[test-python] %s\n' "$*" >&2; }

read_version() { # KEY -> value from versions.env (no sourcing: the file is data)
  local v
  v="$(grep -E "^$1=" "$REQ/versions.env" | tail -n1 | cut -d= -f2- | tr -d '[:space:]')"
  [[ -n "$v" ]] || { log "$1 missing in $REQ/versions.env"; exit 2; }
  printf '%s' "$v"
}

check_pins() { # every requirement line pinned ==, and one version per package across files
  local bad
  bad="$(grep -HnvE '^\s*(#.*)?$|^[A-Za-z0-9_.-]+(\[[A-Za-z0-9_,.-]+\])?==[A-Za-z0-9_.+!-]+\s*(#.*)?$' "$REQ"/*.txt || true)"
  if [[ -n "$bad" ]]; then log "unpinned requirement lines:"; printf '%s\n' "$bad" >&2; exit 1; fi
  bad="$(cat "$REQ"/*.txt | grep -vE '^\s*(#|$)' | sed -E 's/\[[^]]*\]//; s/\s*#.*//' \
    | tr '[:upper:]_' '[:lower:]-' | sort -u | cut -d= -f1 | uniq -d)"
  if [[ -n "$bad" ]]; then log "packages pinned to different versions across files: $bad"; exit 1; fi
}

UV=""
ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV="$(command -v uv)"; return; fi
  if [[ ! -x "$VENVS/.tools/bin/uv" ]]; then
    log "bootstrapping uv $UV_VERSION into $VENVS/.tools"
    "$PYTHON" -m venv "$VENVS/.tools"
    "$VENVS/.tools/bin/pip" install -q "uv==$UV_VERSION"
  fi
  UV="$VENVS/.tools/bin/uv"
}

# make_venv NAME SPEC... [-- NODEPS_SPEC...]: SPEC is "-r FILE", "-e DIR" or a requirement string; the specs after
# "--" are installed without their dependencies (the app's own packages over a lock that already pins them).
make_venv() {
  local name="$1"; shift
  local dir="$VENVS/$name" hash start
  hash="$({ "$PYTHON" --version; printf '%s\n' "$@"
            for a in "$@"; do
              if [[ -f "$a" ]]; then cat "$a"; fi
              if [[ -f "$a/pyproject.toml" ]]; then cat "$a/pyproject.toml"; fi
            done
          } 2>&1 | sha256sum | cut -d' ' -f1)"
  if [[ -f "$dir/.req-hash" && "$(cat "$dir/.req-hash")" == "$hash" ]]; then
    log "venv $name up to date"; return
  fi
  start=$SECONDS
  log "creating venv $name"
  rm -rf "$dir"
  "$UV" venv -q --python "$PYTHON" "$dir"
  local specs=() nodeps=() seen=0 a
  for a in "$@"; do
    if [[ "$a" == "--" ]]; then seen=1; elif [[ $seen -eq 1 ]]; then nodeps+=("$a"); else specs+=("$a"); fi
  done
  "$UV" pip install -q --python "$dir/bin/python" "${specs[@]}"
  if [[ ${#nodeps[@]} -gt 0 ]]; then "$UV" pip install -q --python "$dir/bin/python" --no-deps "${nodeps[@]}"; fi
  printf '%s\n' "$hash" > "$dir/.req-hash"
  log "venv $name ready in $((SECONDS - start))s"
}

setup_venv() {
  case "$1" in
    # The Airflow images' lock with the test-only packages layered on it (requirements/airflow-test.txt: pytest), hashes
    # verified; fx_pipeline's ranges resolve to its pins, so the venv holds the image's package set plus pytest.
    pipeline) make_venv pipeline -r "$REQ/locks/airflow-test.txt" -e "$APP" ;;
    # The image's lock with the test-only packages layered on it (requirements/fastapi-test.txt: Feast, training,
    # alembic for the MLflow registry the tests open on Postgres directly, pytest, schemathesis); every hash checked.
    # fx_http: the HTTP contract both services share (app/libs/fx_http), installed into both images.
    fastapi)  make_venv fastapi --require-hashes -r "$REQ/locks/fastapi-test.txt" -- -e "$APP" -e "$APP/libs/fx_http" ;;
    fingpt)   make_venv fingpt -r "$REQ/base.txt" -r "$REQ/fingpt.txt" -e "$APP/libs/fx_http" "${PYTEST_PINS[@]}" "${FUZZ_PINS[@]}" ;;
    mlflow)   make_venv mlflow --require-hashes -r "$REQ/locks/mlflow-test.txt" ;;
    *) log "unknown suite $1"; exit 2 ;;
  esac
}

REDIS_PID=""
REDIS_DIR=""
PG_DIR=""
PG_STARTED=0
cleanup() {
  if [[ -n "$REDIS_PID" ]]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
  if [[ -n "$REDIS_DIR" ]]; then rm -rf "$REDIS_DIR"; fi
  if [[ $PG_STARTED -eq 1 ]]; then as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m fast -t 60 >/dev/null 2>&1 || true; fi
  if [[ -n "$PG_DIR" ]]; then rm -rf "$PG_DIR"; fi
}
trap cleanup EXIT

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_redis() {
  command -v redis-server >/dev/null || { log "redis-server not found: apt-get install -y redis-server"; exit 1; }
  local port i
  port="$(free_port)"
  REDIS_DIR="$(mktemp -d)"
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$REDIS_DIR" \
    --daemonize no --logfile "$REDIS_DIR/redis.log" &
  REDIS_PID=$!
  for i in $(seq 1 50); do
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
      export TEST_REDIS_HOST=127.0.0.1 TEST_REDIS_PORT="$port"
      log "redis-server pid $REDIS_PID on 127.0.0.1:$port"; return
    fi
    sleep 0.1
  done
  log "redis-server did not start (attempts: $i)"; cat "$REDIS_DIR/redis.log" >&2; exit 1
}

# Debian's PostgreSQL server binaries (package postgresql; not on PATH), newest major installed.
PG_BIN="${PG_BIN:-$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)}"
as_pg() { # the server refuses to run as root: as root, run as the postgres user (Debian's package creates it)
  if [[ $EUID -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# One role per stack database user (feast, mlflow), each with a generated password and CREATEDB: the fixtures in
# app/tests/conftest.py create a fresh database per test as that role. Passwords reach the suites through the
# environment only (TEST_PG_<ROLE>_PASSWORD); the role statements go to psql on stdin, never in argv.
start_postgres() {
  [[ -x "$PG_BIN/initdb" ]] || { log "PostgreSQL server not found under /usr/lib/postgresql: apt-get install -y postgresql"; exit 1; }
  local port role pw sql="" envs=()
  port="$(free_port)"
  PG_DIR="$(mktemp -d)"
  if [[ $EUID -eq 0 ]]; then chown postgres: "$PG_DIR"; fi
  if ! as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1; then
    log "initdb failed:"; cat "$PG_DIR/initdb.log" >&2; exit 1
  fi
  # listen on loopback only, unix socket in the temp folder; pg_ctl -w waits (up to 120 s) until it accepts.
  if ! as_pg "$PG_BIN/pg_ctl" start -D "$PG_DIR/data" -w -t 120 -l "$PG_DIR/postgres.log" \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off" >/dev/null 2>&1; then
    log "postgres did not start on 127.0.0.1:$port; its log:"; cat "$PG_DIR/postgres.log" >&2; exit 1
  fi
  PG_STARTED=1
  for role in feast mlflow; do
    pw="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" # hex: URL-safe, as feature_store.yaml requires
    sql+="CREATE ROLE $role LOGIN CREATEDB PASSWORD '$pw';"$'\n'
    envs+=("TEST_PG_${role^^}_USER=$role" "TEST_PG_${role^^}_PASSWORD=$pw")
  done
  if ! as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$port" -U postgres -d postgres \
      <<<"$sql" >"$PG_DIR/psql.log" 2>&1; then
    log "creating the test roles failed:"; cat "$PG_DIR/psql.log" "$PG_DIR/postgres.log" >&2; exit 1
  fi
  export TEST_PG_HOST=127.0.0.1 TEST_PG_PORT="$port" "${envs[@]}"
  log "postgres $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (roles: feast mlflow)"
}

main() {
  local venvs_only=0
  if [[ "${1:-}" == "--venvs-only" ]]; then venvs_only=1; shift; fi
  local suites=("$@") s rc failed=() t0=$SECONDS start
  [[ ${#suites[@]} -gt 0 ]] || suites=(pipeline fastapi fingpt mlflow)
  check_pins
  ensure_uv
  mkdir -p "$VENVS"
  for s in "${suites[@]}"; do setup_venv "$s"; done
  if [[ $venvs_only -eq 1 ]]; then log "venvs ready in $VENVS: ${suites[*]} ($((SECONDS - t0))s)"; return; fi
  start_redis
  start_postgres
  for s in "${suites[@]}"; do
    start=$SECONDS
    log "running $s tests"
    rc=0
    (cd "$APP" && "$VENVS/$s/bin/python" -m pytest "tests/$s" -q -ra --durations=5) || rc=$?
    log "$s: exit $rc in $((SECONDS - start))s"
    [[ $rc -eq 0 ]] || failed+=("$s")
  done
  log "total $((SECONDS - t0))s"
  if [[ ${#failed[@]} -gt 0 ]]; then log "FAILED suites: ${failed[*]}"; exit 1; fi
  log "all suites passed: ${suites[*]}"
}

main "$@"
