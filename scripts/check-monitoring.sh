#!/usr/bin/env bash
# Validates the Prometheus alert rules in monitoring/: `promtool check rules` (syntax, PromQL, templates) and
# `promtool test rules` (each alert fires in one unit test and stays silent in another).
# Needs promtool (Debian package `prometheus`, installed by scripts/install-test-deps.sh); a missing tool is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

PROMTOOL="${PROMTOOL:-promtool}"
command -v "$PROMTOOL" >/dev/null 2>&1 || {
    echo "check-monitoring: promtool not found; run scripts/install-test-deps.sh (Debian package prometheus)" >&2
    exit 1
}

shopt -s nullglob
rules=(monitoring/prometheus/rules/*.yaml)
tests=(monitoring/prometheus/tests/*.test.yaml)
[[ ${#rules[@]} -gt 0 ]] || { echo "check-monitoring: no rule files in monitoring/prometheus/rules" >&2; exit 1; }
[[ ${#tests[@]} -gt 0 ]] || { echo "check-monitoring: no unit tests in monitoring/prometheus/tests" >&2; exit 1; }

# Every rule file has a unit-test file of the same name.
for r in "${rules[@]}"; do
    t="monitoring/prometheus/tests/$(basename "$r" .yaml).test.yaml"
    [[ -f "$t" ]] || { echo "check-monitoring: $r has no unit tests ($t)" >&2; exit 1; }
done

"$PROMTOOL" --version 2>&1 | head -n1
"$PROMTOOL" check rules "${rules[@]}"
"$PROMTOOL" test rules "${tests[@]}"

# The Airflow StatsD mapping, in the statsd_exporter release the chart runs (v0.28.0 in chart 0.15.0): the config
# loads, and Airflow-shaped lines come out as exactly the metric names the catalogue lists for the airflow target.
STATSD_EXPORTER="${STATSD_EXPORTER:-$(command -v statsd_exporter || echo "$(go env GOPATH 2>/dev/null)/bin/statsd_exporter")}"
[[ -x "$STATSD_EXPORTER" ]] || {
    echo "check-monitoring: statsd_exporter not found; run scripts/install-test-deps.sh (go install)" >&2
    exit 1
}
mapping=monitoring/statsd/mapping.yaml
"$STATSD_EXPORTER" --statsd.mapping-config="$mapping" --check-config
port_base=$((20000 + RANDOM % 20000))
"$STATSD_EXPORTER" --statsd.mapping-config="$mapping" --web.listen-address="127.0.0.1:$port_base" \
    --statsd.listen-udp="127.0.0.1:$((port_base + 1))" --statsd.listen-tcp= 2>/dev/null &
exporter_pid=$!
trap 'kill "$exporter_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs "127.0.0.1:$port_base/metrics" >/dev/null && break; sleep 0.1; done
for line in "airflow.scheduler_heartbeat:1|c" "airflow.dagrun.duration.success.fx_market_pipeline:42000|ms" \
    "airflow.dagrun.duration.failed.fx_daily_training:1200|ms" "airflow.ti.finish.fx_market_pipeline.collect.success:1|c" \
    "airflow.executor.open_slots:16|g" "airflow.executor.queued_tasks:0|g" "airflow.executor.running_tasks:1|g" \
    "airflow.dag_processing.import_errors:0|g" "airflow.dag.fx_market_pipeline.collect.duration:100|ms" \
    "airflow.pool.open_slots.default_pool:128|g"; do
    printf '%s\n' "$line" >"/dev/udp/127.0.0.1/$((port_base + 1))"
done
sleep 1
got="$(curl -fs "127.0.0.1:$port_base/metrics" | grep -E '^airflow_' | sed -E 's/[{ ].*//' | sort -u)"
want="$(node -e 'const y=require("yaml");const c=y.parse(require("fs").readFileSync("monitoring/metrics-catalogue.yaml","utf8"));console.log(c.targets.airflow.metrics.sort().join("\n"))')"
if [[ "$got" != "$want" ]]; then
    echo "check-monitoring: statsd_exporter output differs from the catalogue's airflow metrics" >&2
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") >&2 || true
    exit 1
fi
echo "statsd mapping: $(wc -l <<<"$got") Airflow metric names match the catalogue; unmapped lines dropped"
