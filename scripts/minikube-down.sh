#!/usr/bin/env bash
# Stops the registry port-forward and deletes the minikube profile.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

PROFILE="${MINIKUBE_PROFILE:-fx-ml}"
require_cmd minikube "install minikube: https://minikube.sigs.k8s.io/docs/start/"
pkill -f "port-forward --namespace kube-system service/registry 5000:80" || true
if minikube status -p "$PROFILE" >/dev/null 2>&1 || minikube profile list 2>/dev/null | grep -q "$PROFILE"; then
    log "deleting minikube profile ${PROFILE}"
    minikube delete -p "$PROFILE"
fi
