#!/usr/bin/env bash
# The project's test command (`npm test`): type-check, lint, the Pulumi mock suite, then the checks each area adds.
# Needs the tools that .ci/run installs (scripts/install-test-deps.sh); a missing tool is an error, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage prints its wall time when the next begins (and at exit), so CI logs show where the minutes go.
stage=""
stage_start=0
timings=()
finish_stage() {
    if [[ -n "$stage" ]]; then
        timings+=("$(printf '%5ss  %s' "$(($(date +%s) - stage_start))" "$stage")")
        printf '<== %ss: %s\n' "$(($(date +%s) - stage_start))" "$stage"
    fi
}
step() {
    finish_stage
    stage="$*"
    stage_start=$(date +%s)
    printf '\n==> %s\n' "$*"
}
summary() {
    local rc=$?
    finish_stage
    stage=""
    printf '\nStage times:\n'
    printf '%s\n' "${timings[@]}"
    return "$rc"
}
trap summary EXIT

step "TypeScript type-check (strict)"
npx tsc --noEmit

step "ESLint and Prettier"
npx eslint .
npx prettier --check .

step "README config table matches Pulumi.yaml"
node scripts/config-docs.mjs --check

step "Shell scripts (shellcheck)"
shellcheck -x scripts/*.sh .ci/run test/fixtures/fake-bin/*

step "GitHub workflow (actionlint, which also runs shellcheck on each run: script)"
actionlint

step "Monitoring: promtool check/test rules, StatsD mapping"
bash scripts/check-monitoring.sh

step "Python venvs for the env contract test (scripts/test-python.sh --venvs-only)"
bash scripts/test-python.sh --venvs-only fastapi fingpt pipeline

step "Pulumi program under mocks (jest; test/contracts.test.ts introspects the services' settings in the venvs)"
npx jest --ci

step "Real kube-apiserver: every object of both stacks dry-run, applied, pod templates admitted (npm run test:apiserver)"
npm run --silent test:apiserver

step "Real Pulumi engine: npm run preview of both stacks against a real kube-apiserver, with the policy pack (npm run test:engine)"
npm run --silent test:engine

step "Images for real: pulumi up of dev builds and pushes every image on a Docker engine, then destroy (npm run test:images)"
npm run --silent test:images

step "Real node: pods, Services, DNS, volumes and NetworkPolicies on a single-node cluster, then the dev stack up on it, the pipeline untouched to a prediction, updated and destroyed (npm run test:cluster, then test:stack)"
npm run --silent test:cluster

step "Reference app: pytest per image in venvs built from app/requirements (scripts/test-python.sh)"
bash scripts/test-python.sh

step "Rendered manifests: kube-score and checkov (scripts/lint-manifests.sh)"
bash scripts/lint-manifests.sh
