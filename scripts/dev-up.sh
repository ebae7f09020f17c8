#!/usr/bin/env bash
# The quick start's main job: a local cluster with its registry (kind by default, minikube with DEV_CLUSTER=minikube
# or when only minikube is installed), then `pulumi up` of the dev stack with state in a local file backend
# (.pulumi-state/). Builds and pushes the images the dev stack deploys, then deploys it.
# Every prerequisite is checked at once, before anything is created; each missing one is named with its install hint.
# PULUMI_CONFIG_PASSPHRASE encrypts the stack's secrets; it defaults to empty for a throwaway laptop stack (export the
# same value in any shell where you run pulumi against this stack later).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

PULUMI_VERSION="3.276.0"
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 is not installed: $2"); }

need pulumi "install the Pulumi CLI ${PULUMI_VERSION}: https://www.pulumi.com/docs/install/"
need helm "install Helm 3: https://helm.sh/docs/intro/install/"
need kubectl "install kubectl: https://kubernetes.io/docs/tasks/tools/"
need docker "install Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/"
if command -v docker >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
    missing+=("the Docker daemon is not running (docker info fails): start Docker Desktop or 'sudo systemctl start docker'")
fi

cluster="${DEV_CLUSTER:-}"
if [ -z "$cluster" ]; then
    if command -v kind >/dev/null 2>&1; then
        cluster=kind
    elif command -v minikube >/dev/null 2>&1; then
        cluster=minikube
    else
        cluster=none
        missing+=("neither kind nor minikube is installed: install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) or minikube (https://minikube.sigs.k8s.io/docs/start/)")
    fi
fi
case "$cluster" in
    kind) need kind "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
    minikube) need minikube "install minikube: https://minikube.sigs.k8s.io/docs/start/" ;;
    none) ;; # already named above, with both install hints
    *) missing+=("DEV_CLUSTER is '${cluster}': use kind or minikube") ;;
esac

# Node.js 24: scripts/node.sh installs the pinned release where the system's is older (Linux), or says what to do.
# shellcheck source=scripts/node.sh
if ! node_error="$( (source scripts/node.sh) 2>&1 >/dev/null)"; then
    missing+=("${node_error#error: }")
fi

if [ "${#missing[@]}" -gt 0 ]; then
    printf 'error: %d prerequisite(s) missing; nothing was created:\n' "${#missing[@]}" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi

# The checks passed: now put the pinned Node.js on PATH in this shell.
# shellcheck source=scripts/node.sh
source scripts/node.sh
[ -d node_modules ] || npm ci --no-audit --no-fund

export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
mkdir -p .pulumi-state
if [ "$cluster" = kind ]; then
    bash scripts/kind-up.sh
    pulumi login "file://$(pwd)/.pulumi-state"
    pulumi stack select dev --create
    if [ "${KIND_CLUSTER_NAME:-fx-ml}" != fx-ml ]; then
        log "kind cluster ${KIND_CLUSTER_NAME}: setting kubeContext kind-${KIND_CLUSTER_NAME} in Pulumi.dev.yaml"
        pulumi config set kubeContext "kind-${KIND_CLUSTER_NAME}" --stack dev
    fi
else
    bash scripts/minikube-up.sh
    pulumi login "file://$(pwd)/.pulumi-state"
    pulumi stack select dev --create
    # minikube's context is its profile, and its registry addon is forwarded to localhost:5000 (scripts/minikube-up.sh).
    log "minikube: setting kubeContext ${MINIKUBE_PROFILE:-fx-ml} and registryServer localhost:5000 in Pulumi.dev.yaml"
    pulumi config set kubeContext "${MINIKUBE_PROFILE:-fx-ml}" --stack dev
    pulumi config set registryServer localhost:5000 --stack dev
fi
pulumi up --stack dev --yes "$@"
pulumi stack output --stack dev
