#!/usr/bin/env bash
# Installs the tools the test suite needs beyond npm packages (run as root on Debian, as CI does).
set -euo pipefail

if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # prometheus: promtool for scripts/check-monitoring.sh (Debian 12 ships 2.42); redis-server: the real Redis the
    # reference app's tests run against (scripts/test-python.sh starts it on a loopback port).
    # docker-registry and debootstrap: the images tier's local registry and its stand-in bases (tools/docker.ts,
    # tools/standin-images.ts); docker.io (dockerd, containerd, runc and a client that builds with BuildKit) where no
    # Docker engine is installed (a runner's Docker CE conflicts with Debian's package, and serves as well).
    docker=()
    command -v dockerd >/dev/null 2>&1 || docker=(docker.io)
    apt-get install -y -qq --no-install-recommends shellcheck prometheus redis-server \
        docker-registry debootstrap "${docker[@]}" >/dev/null
    # The cluster tier's node (tools/cluster.ts): the CNI plugins in /usr/lib/cni, nft (to check and remove the
    # NetworkPolicy enforcer's nf_tables table), and containerd (with runc) where none is installed (a machine with
    # Docker's own containerd package keeps it: the two conflict).
    node_packages=(containernetworking-plugins nftables)
    command -v containerd >/dev/null || node_packages+=(containerd)
    apt-get install -y -qq --no-install-recommends "${node_packages[@]}" >/dev/null
    # postgresql (Debian 12's 15): the server scripts/test-python.sh starts for the Feast SQL registry and the MLflow
    # backend store of the reference app's tests (the stack runs both on Postgres).
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

# statsd_exporter, the release prometheus-statsd-exporter 0.15.0 runs, for the StatsD mapping check.
go install github.com/prometheus/statsd_exporter@v0.28.0

# Peer linters for scripts/lint-manifests.sh, each installed only when that version is missing. kube-score from the Go
# module proxy; checkov (PyPI) in its own venv, standing in for kube-linter, whose Go module the proxy refuses.
KUBE_SCORE_VERSION=v1.20.0
if ! go version -m "$(go env GOPATH)/bin/kube-score" 2>/dev/null | grep -q "github.com/zegl/kube-score[[:space:]]*$KUBE_SCORE_VERSION"; then
    go install "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
fi
CHECKOV_VERSION=3.3.30
CHECKOV_VENV="$(dirname "$0")/../.venvs/checkov"
if [[ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]]; then
    rm -rf "$CHECKOV_VENV"
    "${PYTHON:-python3.11}" -m venv "$CHECKOV_VENV"
    "$CHECKOV_VENV/bin/pip" install -q "checkov==$CHECKOV_VERSION"
fi

# Kubernetes' own Pod Security evaluator (k8s.io/pod-security-admission) for the Helm chart checks
# (test/chart-checks.ts): a small Go program in test/psa-check, built into $HOME/.cache/fx-ml-psa-check.
bash "$(dirname "$0")/build-psa-check.sh" >/dev/null
