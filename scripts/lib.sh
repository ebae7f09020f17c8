#!/usr/bin/env bash
# Shared helpers for the cluster scripts. Source it; do not run it.

# Pinned versions of what the scripts install on a local cluster.
export KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0}"
export REGISTRY_IMAGE="registry:3.0.0"
export TRAEFIK_CHART_VERSION="41.5.0"
export METRICS_SERVER_CHART_VERSION="3.13.0"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# require_cmd NAME HINT: fail with an install hint when a tool is missing.
require_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed: $2"
}

# install_traefik KUBECONTEXT SERVICE_TYPE: the dev ingress controller (ingress-nginx was retired in March 2026).
install_traefik() {
    local context="$1" service_type="$2"
    require_cmd helm "install Helm 3: https://helm.sh/docs/intro/install/"
    helm repo add traefik https://traefik.github.io/charts --force-update >/dev/null
    log "installing Traefik ${TRAEFIK_CHART_VERSION} (IngressClass traefik)"
    helm upgrade --install traefik traefik/traefik \
        --kube-context "$context" \
        --namespace traefik --create-namespace \
        --version "$TRAEFIK_CHART_VERSION" \
        --set service.type="$service_type" \
        --set ports.web.nodePort=30080 \
        --set ports.websecure.nodePort=30443 \
        --set ingressClass.enabled=true \
        --set ingressClass.isDefaultClass=false \
        --wait --timeout 5m
}

# install_metrics_server KUBECONTEXT: the resource metrics API, so FastAPI's HorizontalPodAutoscaler can scale. kind's
# kubelets serve self-signed certificates, hence --kubelet-insecure-tls (local clusters only).
install_metrics_server() {
    local context="$1"
    require_cmd helm "install Helm 3: https://helm.sh/docs/intro/install/"
    helm repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ --force-update >/dev/null
    log "installing metrics-server ${METRICS_SERVER_CHART_VERSION}"
    helm upgrade --install metrics-server metrics-server/metrics-server \
        --kube-context "$context" \
        --namespace kube-system \
        --version "$METRICS_SERVER_CHART_VERSION" \
        --set 'args={--kubelet-insecure-tls}' \
        --wait --timeout 5m
}
