#!/usr/bin/env bash
# Deletes the kind cluster and its local registry container. Safe to run when either is already gone.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

CLUSTER="${KIND_CLUSTER_NAME:-fx-ml}"
require_cmd kind "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
if kind get clusters | grep -qx "$CLUSTER"; then
    log "deleting kind cluster ${CLUSTER}"
    kind delete cluster --name "$CLUSTER"
fi
if docker inspect kind-registry >/dev/null 2>&1; then
    log "removing registry container kind-registry"
    docker rm -f kind-registry >/dev/null
fi
