#!/usr/bin/env bash
# Builds test/psa-check (Kubernetes' own Pod Security Standards evaluator, k8s.io/pod-security-admission/policy) into
# $HOME/.cache/fx-ml-psa-check/<hash of go.mod, go.sum, main.go>/psa-check and prints that path. A build that exists is
# reused, so a warm run takes milliseconds. tools/helm-render.ts runs the binary; scripts/install-test-deps.sh builds it.
set -euo pipefail
cd "$(dirname "$0")/../test/psa-check"
key=$(cat go.mod go.sum main.go | sha256sum | cut -c1-12)
out="${FX_PSA_CHECK_CACHE:-$HOME/.cache/fx-ml-psa-check}/$key"
if [[ ! -x "$out/psa-check" ]]; then
    mkdir -p "$out"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/psa-check.tmp" .
    mv "$out/psa-check.tmp" "$out/psa-check"
fi
echo "$out/psa-check"
