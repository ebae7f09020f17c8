#!/usr/bin/env bash
# Renders both stacks (npm run render) and runs the peer linters over every Kubernetes object the program declares:
# kube-score (flags and switched-off checks in .kube-score-flags) and checkov (.checkov.yaml). Fails on any
# kube-score CRITICAL or checkov failed check. Tools come from scripts/install-test-deps.sh.
# Usage: scripts/lint-manifests.sh [stack ...]   (default: dev gpu)
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_SCORE="${KUBE_SCORE:-$(go env GOPATH)/bin/kube-score}"
CHECKOV="${CHECKOV:-.venvs/checkov/bin/checkov}"
for tool in "$KUBE_SCORE" "$CHECKOV"; do
    [[ -x "$tool" ]] || { echo "lint-manifests: $tool not found: run scripts/install-test-deps.sh" >&2; exit 1; }
done

mapfile -t score_flags < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' .kube-score-flags)

# The linters must be able to fail: both reject a Deployment without resources, probes or security context.
selftest="$(mktemp -d)"
trap 'rm -rf "$selftest"' EXIT
cat >"$selftest/bad.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: { name: bad, namespace: selftest }
spec:
  selector: { matchLabels: { app: bad } }
  template:
    metadata: { labels: { app: bad } }
    spec:
      containers: [{ name: bad, image: "nginx:latest" }]
YAML
if "$KUBE_SCORE" score "${score_flags[@]}" --output-format ci "$selftest/bad.yaml" >/dev/null; then
    echo "lint-manifests: kube-score passed a known-bad Deployment" >&2; exit 1
fi
if "$CHECKOV" --config-file .checkov.yaml -d "$selftest" >/dev/null; then
    echo "lint-manifests: checkov passed a known-bad Deployment" >&2; exit 1
fi
echo "lint-manifests: both linters reject the known-bad Deployment"

stacks=("$@")
[[ ${#stacks[@]} -gt 0 ]] || stacks=(dev gpu)
failed=()
for stack in "${stacks[@]}"; do
    npm run --silent render -- "$stack"
    manifests=(out/"$stack"/manifests/*.yaml)

    echo "kube-score: stack $stack (${#manifests[@]} files)"
    rc=0
    out="$("$KUBE_SCORE" score "${score_flags[@]}" --output-format ci "${manifests[@]}")" || rc=$?
    grep -vE '^\[(OK|SKIPPED)\]' <<<"$out" || true
    echo "kube-score: $(grep -c '^\[OK\]' <<<"$out") OK, $(grep -c '^\[WARNING\]' <<<"$out") warnings, $(grep -c '^\[CRITICAL\]' <<<"$out") critical"
    [[ $rc -eq 0 ]] || failed+=("kube-score/$stack")

    echo "checkov: stack $stack"
    "$CHECKOV" --config-file .checkov.yaml -d "out/$stack/manifests" || failed+=("checkov/$stack")
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "lint-manifests: FAILED ${failed[*]}" >&2
    exit 1
fi
echo "lint-manifests: no kube-score critical and no checkov failure in stacks ${stacks[*]}"
