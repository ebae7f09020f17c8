#!/usr/bin/env bash
# Creates (or reuses) the local kind cluster `fx-ml` with kind's local registry on localhost:5001, following kind's
# documented pattern: a registry container, a containerd certs.d hosts entry on every node, the registry joined to the
# kind network and the `local-registry-hosting` ConfigMap. Installs Traefik as the ingress controller with ports 80
# and 443 mapped to the host, and metrics-server for the HorizontalPodAutoscaler. Safe to run again.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

CLUSTER="${KIND_CLUSTER_NAME:-fx-ml}"
REG_NAME="kind-registry"
REG_PORT="5001"

require_cmd docker "install Docker Engine or Docker Desktop"
require_cmd kind "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
require_cmd kubectl "install kubectl: https://kubernetes.io/docs/tasks/tools/"

if [ "$(docker inspect -f '{{.State.Running}}' "$REG_NAME" 2>/dev/null || true)" != "true" ]; then
    log "starting registry ${REG_NAME} on 127.0.0.1:${REG_PORT}"
    docker rm -f "$REG_NAME" >/dev/null 2>&1 || true
    docker run -d --restart=always -p "127.0.0.1:${REG_PORT}:5000" --network bridge --name "$REG_NAME" "$REGISTRY_IMAGE" >/dev/null
fi

if ! kind get clusters | grep -qx "$CLUSTER"; then
    log "creating kind cluster ${CLUSTER} (${KIND_NODE_IMAGE})"
    kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --wait 120s --config=- <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
nodes:
  - role: control-plane
    extraPortMappings:
      - { containerPort: 30080, hostPort: 80, listenAddress: "127.0.0.1", protocol: TCP }
      - { containerPort: 30443, hostPort: 443, listenAddress: "127.0.0.1", protocol: TCP }
YAML
else
    log "kind cluster ${CLUSTER} already exists"
fi

# localhost inside a node is the node itself: alias localhost:5001 to the registry container for containerd.
registry_dir="/etc/containerd/certs.d/localhost:${REG_PORT}"
for node in $(kind get nodes --name "$CLUSTER"); do
    docker exec "$node" mkdir -p "$registry_dir"
    printf '[host."http://%s:5000"]\n' "$REG_NAME" | docker exec -i "$node" cp /dev/stdin "${registry_dir}/hosts.toml"
done

if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$REG_NAME")" = "null" ]; then
    docker network connect kind "$REG_NAME"
fi

kubectl --context "kind-${CLUSTER}" apply -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:${REG_PORT}"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
YAML

install_traefik "kind-${CLUSTER}" NodePort
install_metrics_server "kind-${CLUSTER}"
log "cluster ready: kubectl context kind-${CLUSTER}, registry localhost:${REG_PORT}, ingress on http(s)://*.fx-ml.localhost"
