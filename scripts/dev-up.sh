#!/usr/bin/env bash
# The quick start's main job: a local kind cluster with its registry, then `pulumi up` of the dev stack with state in
# a local file backend (.pulumi-state/). Builds and pushes the seven images, then deploys the stack.
# PULUMI_CONFIG_PASSPHRASE encrypts the stack's secrets; it defaults to empty for a throwaway laptop stack.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

require_cmd node "install Node.js 20: https://nodejs.org/"
require_cmd pulumi "install the Pulumi CLI: https://www.pulumi.com/docs/install/"

[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/kind-up.sh

export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
mkdir -p .pulumi-state
pulumi login "file://$(pwd)/.pulumi-state"
pulumi stack select dev --create
kubectl config use-context "kind-${KIND_CLUSTER_NAME:-fx-ml}" >/dev/null
pulumi up --stack dev --yes "$@"
pulumi stack output --stack dev
