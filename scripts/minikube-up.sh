#!/usr/bin/env bash
# The minikube alternative to kind-up.sh: a `fx-ml` profile with minikube's registry addon and Traefik.
# minikube's registry proxy serves localhost:5000 on every node, so the dev stack needs `registryServer: localhost:5000`
# and `kubeContext: fx-ml` (minikube names the context after the profile) on this cluster: the script prints both
# commands (scripts/dev-up.sh with DEV_CLUSTER=minikube sets them). Keep the port-forward it starts running while you
# `pulumi up`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

PROFILE="${MINIKUBE_PROFILE:-fx-ml}"
require_cmd minikube "install minikube: https://minikube.sigs.k8s.io/docs/start/"
require_cmd kubectl "install kubectl: https://kubernetes.io/docs/tasks/tools/"

if ! minikube status -p "$PROFILE" >/dev/null 2>&1; then
    log "starting minikube profile ${PROFILE}"
    minikube start -p "$PROFILE" --cpus 4 --memory 8g --addons registry --addons metrics-server
else
    log "minikube profile ${PROFILE} is running"
    minikube addons enable registry -p "$PROFILE" >/dev/null
fi

install_traefik "$PROFILE" NodePort

if ! pgrep -f "port-forward --namespace kube-system service/registry 5000:80" >/dev/null; then
    log "forwarding localhost:5000 to the registry addon (log: /tmp/fx-ml-registry-forward.log)"
    nohup kubectl --context "$PROFILE" port-forward --namespace kube-system service/registry 5000:80 \
        >/tmp/fx-ml-registry-forward.log 2>&1 &
fi
log "next: pulumi config set kubeContext ${PROFILE} --stack dev; pulumi config set registryServer localhost:5000 --stack dev"
log "UIs: minikube service -p ${PROFILE} -n traefik traefik --url gives the ingress address"
