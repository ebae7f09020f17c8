#!/usr/bin/env bash
# Builds the real engines the test tiers run (kube-apiserver, kube-controller-manager, etcd, kubectl, helm, the Pulumi
# CLI, the Pulumi Kubernetes provider, actionlint; for the node tier kubelet, kube-scheduler, kube-proxy, CoreDNS,
# local-path-provisioner, kube-network-policies and the node's stand-in images' programs) from the Go module proxy into
# $HOME/.cache/fx-ml-tools/<tool>-<version>/ and links each into $HOME/.cache/fx-ml-tools/bin (printed at the end; put
# it first on PATH). A tool whose folder exists is not rebuilt, so a warm run takes seconds. Versions and the reasons
# for them: docs/decisions.md ("Real engines from Go modules").
#
#   scripts/tools.sh            build what is missing, print the bin folder
#   scripts/tools.sh --print    print the bin folder only (exit 1 when a tool is missing)
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VERSION=v1.34.4 # kube-apiserver and kubectl (one minor version: kubectl within one of the server)
ETCD_VERSION=v3.6.4        # what k8s.io/kubernetes v1.34.4 requires (go.etcd.io/etcd/* v3.6.4)
HELM_VERSION=v3.19.5       # Helm 3, as the Pulumi Kubernetes provider embeds (helm.sh/helm/v3)
PULUMI_VERSION=v3.276.0    # the CLI, the same release as the @pulumi/pulumi npm package
# The Kubernetes provider: the newest source module the proxy serves, installed as the exact plugin version the
# @pulumi/kubernetes npm package asks for (the CLI accepts no other).
PULUMI_K8S_MODULE_VERSION=v4.0.0-20260115033456-f47bc2d6f199
PULUMI_K8S_SDK_V4_VERSION=v4.24.0  # its go.mod points sdk/v4 at a local folder; this is the release it requires
PULUMI_K8S_SDK_V3_VERSION=v3.215.0 # the pulumi sdk/v3 its go.mod asks for (a newer sdk/v4 would pull a newer one)
PULUMI_K8S_PLUGIN_VERSION=$(node -p 'require("./package.json").dependencies["@pulumi/kubernetes"]')
ACTIONLINT_VERSION=v1.7.12
COREDNS_VERSION=v1.12.1             # the CoreDNS kubeadm v1.34 deploys
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30 # kind's default StorageClass provisioner; the newest version the proxy serves
# The NetworkPolicy enforcer kind runs since v0.24 (inside kindnetd, as a library); v0.8.0's one command, patched
# (scripts/kube-network-policies/: a --kubeconfig flag, the NFQUEUE target this kernel has instead of nft_queue, and
# its --disable-nri flag passed on).
KUBE_NETWORK_POLICIES_VERSION=v0.8.0
# The offline mirror's stand-ins (tools/mirror-images.ts): the programs of the third-party images the dev stack's pods
# run, each at the version the rendered dev charts name (docs/airgap.md), built from its own module with its own go.mod.
CNPG_VERSION=v1.30.0                 # ghcr.io/cloudnative-pg/cloudnative-pg:1.30.0 (cmd/manager)
PROMETHEUS_MODULE_VERSION=v0.314.0   # quay.io/prometheus/prometheus:v3.14.0 (the module tags 3.14.0 as v0.314.0)
ALERTMANAGER_VERSION=v0.34.0         # quay.io/prometheus/alertmanager:v0.34.0
PROMETHEUS_OPERATOR_VERSION=v0.93.1  # quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1
KUBE_STATE_METRICS_VERSION=v2.20.0   # registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0
STATSD_EXPORTER_VERSION=v0.28.0      # prom/statsd-exporter:v0.28.0
REDIS_EXPORTER_VERSION=v1.74.0       # the chart names v1.77.0, which the proxy does not serve; v1.74.0 is the newest it does
# Prometheus with the Kubernetes service discovery only (its own build tags): the dev stack's scrape configs use no
# other, and the 25 cloud SDKs of the full build would double its cold build.
PROMETHEUS_TAGS=remove_all_sd,enable_kubernetes_sd

CACHE="${FX_TOOLS_CACHE:-$HOME/.cache/fx-ml-tools}"
BIN="$CACHE/bin"
TOOLS=(kube-apiserver kube-controller-manager kubectl etcd helm pulumi pulumi-resource-kubernetes actionlint
    kubelet kube-scheduler kube-proxy coredns local-path-provisioner kube-network-policies fx-pause fx-probe
    fx-volume-helper cnpg-manager prometheus alertmanager prometheus-config-reloader kube-state-metrics statsd_exporter
    redis_exporter)
# The commands built from k8s.io/kubernetes; their list is part of that build folder's name, so adding one rebuilds it.
KUBERNETES_CMDS=(kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy)
# CoreDNS with the plugins the node's Corefile uses (tools/cluster.ts), not the 50-odd of the release build (cloud DNS
# SDKs among them): a custom main, as CoreDNS documents; the list is part of the build folder's name.
COREDNS_PLUGINS=(cache errors health kubernetes loadbalance log metrics ready reload)

if [[ "${1:-}" == "--print" ]]; then
    for t in "${TOOLS[@]}"; do [[ -x "$BIN/$t" ]] || { echo "missing tool $t: run scripts/tools.sh" >&2; exit 1; }; done
    echo "$BIN"
    exit 0
fi

mkdir -p "$BIN"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
timings=()

# build DIR NAME...: run the build function "build_NAME DIR" unless DIR already holds the result; times each cold build.
build() {
    local dir="$1" fn="$2"
    if [[ ! -f "$dir/.done" ]]; then
        local t0 t
        t0=$(date +%s)
        rm -rf "$dir" && mkdir -p "$dir/bin"
        echo "==> building $(basename "$dir") (cold; minutes on 2 cores)" >&2
        "$fn" "$dir"
        touch "$dir/.done"
        t=$(($(date +%s) - t0))
        timings+=("$(basename "$dir"): ${t}s")
        echo "$t" >"$dir/build-seconds" # read by the node tier's figures (test/tiers/cluster.test.ts)
    fi
    ln -sf "$dir"/bin/* "$BIN/"
}

# A wrapper module, so the go command resolves the exact versions we pin (replace lines included).
wrapper() {
    local dir="$1"
    mkdir -p "$dir/src"
    printf 'module fxtools\n\ngo 1.24\n' >"$dir/src/go.mod"
    echo 'package main' >"$dir/src/main.go"
}

# k8s.io/kubernetes replaces every k8s.io/* staging module with a local folder; pin each to the matching v0.X.Y.
build_kubernetes() {
    local dir="$1" staging="v0.${KUBERNETES_VERSION#v1.}" mod
    wrapper "$dir"
    mod=$(cd "$dir/src" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
    (
        cd "$dir/src"
        grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$mod" | awk '{print $1}' | while read -r m; do
            go mod edit -replace "$m=$m@$staging"
        done
        go mod edit -require "k8s.io/kubernetes@$KUBERNETES_VERSION"
        go build -trimpath -o "$dir/bin/" \
            -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${staging#v0.}" \
            "${KUBERNETES_CMDS[@]/#/k8s.io/kubernetes/cmd/}"
    )
}

# etcd's server module holds the command as a library (etcdmain); a two-line main runs it.
build_etcd() {
    local dir="$1"
    wrapper "$dir"
    printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >"$dir/src/main.go"
    (cd "$dir/src" && go mod edit -require "go.etcd.io/etcd/server/v3@$ETCD_VERSION" &&
        go build -trimpath -ldflags "-s -w" -o "$dir/bin/etcd" .)
}

build_helm() {
    local dir="$1"
    GOBIN="$dir/bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

# pkg/v3's go.mod replaces sdk/v3 with ../sdk and carries a clipboard fork; the wrapper repeats both.
build_pulumi() {
    local dir="$1" mod
    wrapper "$dir"
    (
        cd "$dir/src"
        mod=$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
        go mod edit -require "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" \
            -replace "github.com/pulumi/pulumi/sdk/v3=github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
        grep -E '^replace .* => [^.]' "$mod" | while read -r _ from _ to ver; do go mod edit -replace "$from=$to@$ver"; done
        go build -trimpath -o "$dir/bin/pulumi" \
            -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
            github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
    )
}

# The provider embeds files its own generate.go makes from schema.json, so it builds from a writable copy.
build_pulumi_kubernetes() {
    local dir="$1" src
    src=$(go mod download -json "github.com/pulumi/pulumi-kubernetes/provider/v4@$PULUMI_K8S_MODULE_VERSION" |
        sed -n 's/.*"Dir": "\(.*\)",/\1/p')
    cp -r "$src" "$dir/src" && chmod -R u+w "$dir/src"
    (
        cd "$dir/src"
        go mod edit -replace "github.com/pulumi/pulumi-kubernetes/sdk/v4=github.com/pulumi/pulumi-kubernetes/sdk/v4@$PULUMI_K8S_SDK_V4_VERSION" \
            -replace "github.com/pulumi/pulumi/sdk/v3=github.com/pulumi/pulumi/sdk/v3@$PULUMI_K8S_SDK_V3_VERSION"
        (cd cmd/pulumi-resource-kubernetes && VERSION="$PULUMI_K8S_PLUGIN_VERSION" go run generate.go)
        go build -trimpath -o "$dir/bin/pulumi-resource-kubernetes" \
            -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_K8S_PLUGIN_VERSION" \
            ./cmd/pulumi-resource-kubernetes
    )
}

build_actionlint() {
    local dir="$1"
    GOBIN="$dir/bin" go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
}

# CoreDNS's own main (coremain.Run) over the chosen plugins; its full directive list still orders them.
build_coredns() {
    local dir="$1"
    wrapper "$dir"
    {
        printf 'package main\n\nimport (\n\t"github.com/coredns/coredns/coremain"\n'
        printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "${COREDNS_PLUGINS[@]}"
        printf ')\n\nfunc main() { coremain.Run() }\n'
    } >"$dir/src/main.go"
    (cd "$dir/src" && go mod edit -require "github.com/coredns/coredns@$COREDNS_VERSION" &&
        go build -trimpath -ldflags "-s -w" -o "$dir/bin/coredns" .)
}

build_local_path_provisioner() {
    local dir="$1"
    GOBIN="$dir/bin" go install -trimpath -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION" \
        "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION"
}

# kube-network-policies' command from a writable copy of its module (its own go.mod and go.sum), with two files of
# ours added, the two places that use them changed and one flag wired; each change is checked, so a different source
# fails here.
build_kube_network_policies() {
    local dir="$1" src patches="$PWD/scripts/kube-network-policies"
    src=$(go mod download -json "sigs.k8s.io/kube-network-policies@$KUBE_NETWORK_POLICIES_VERSION" |
        sed -n 's/.*"Dir": "\(.*\)",/\1/p')
    cp -r "$src" "$dir/src" && chmod -R u+w "$dir/src"
    (
        cd "$dir/src"
        cp "$patches/kubeconfig.go" cmd/ && cp "$patches/nfqueue_xt.go" pkg/networkpolicy/
        sed -i 's/config, err := rest.InClusterConfig()/config, err := restConfig(rest.InClusterConfig)/' cmd/main.go
        # v0.8.0 parses --disable-nri but never passes it on: without this it always dials /var/run/nri/nri.sock,
        # which would be another runtime's (the node's containerd 1.6 has no NRI).
        sed -i 's/^\t\tNetfilterBug1766Fix: *netfilterBug1766Fix,$/&\n\t\tNRIdisabled: disableNRI,/' cmd/main.go
        # With NRI off, a packet from an IP no pod holds any more (a finished Job's pod) reached the NRI lookup's nil
        # plugin and the enforcer died with SIGSEGV (every queued packet dropped, cluster DNS included).
        sed -i 's/^\t\t\tpodKey := c\.nriPlugin\.GetPodFromIP(podIP)$/\t\t\tif c.nriPlugin == nil {\n\t\t\t\treturn nil\n\t\t\t}\n&/' \
            pkg/networkpolicy/controller.go
        perl -0pi -e 's/queue := &expr\.Queue\{Num: uint16\(c\.config\.QueueID\)\}\n\tif c\.config\.FailOpen \{\n\t\tqueue\.Flag = expr\.QueueFlagBypass\n\t\}/queue := nfqueueTarget(c.config.QueueID, c.config.FailOpen)/g' \
            pkg/networkpolicy/controller.go
        [[ $(grep -c 'restConfig(rest.InClusterConfig)' cmd/main.go) == 1 &&
            $(grep -c 'NRIdisabled: disableNRI,' cmd/main.go) == 1 &&
            $(grep -c 'if c.nriPlugin == nil {' pkg/networkpolicy/controller.go) == 1 &&
            $(grep -c 'nfqueueTarget(c.config.QueueID, c.config.FailOpen)' pkg/networkpolicy/controller.go) == 2 &&
            $(grep -c 'expr.Queue' pkg/networkpolicy/controller.go) == 0 ]] ||
            { echo "kube-network-policies $KUBE_NETWORK_POLICIES_VERSION: the source is not what the patch expects" >&2; exit 1; }
        go build -trimpath -ldflags "-s -w" -o "$dir/bin/kube-network-policies" ./cmd
    )
}

# The project's own programs for the node's stand-in images (test/node-images: standard library only).
build_node_images() {
    local dir="$1"
    (cd test/node-images && go build -trimpath -ldflags "-s -w" -o "$dir/bin/" ./cmd/...)
}

# mirror_build DIR MODULE VERSION OUT PACKAGE [go build flags...]: one command of a mirrored image, built in the module's
# own folder (its go.mod, go.sum and replace lines, as its release is built), static, into DIR/bin/OUT.
mirror_build() {
    local dir="$1" module="$2" version="$3" out="$4" pkg="$5" src
    shift 5
    src=$(go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
    (cd "$src" && GOWORK=off go build -mod=readonly -trimpath -o "$dir/bin/$out" "$@" "$pkg")
}
# The version variables each project's release build sets (.promu.yml, Makefile, Dockerfile).
common_version() { echo "-X github.com/prometheus/common/version.Version=${1#v}"; }

build_cnpg() {
    mirror_build "$1" github.com/cloudnative-pg/cloudnative-pg "$CNPG_VERSION" cnpg-manager ./cmd/manager -ldflags "-s -w"
}
build_prometheus() {
    mirror_build "$1" github.com/prometheus/prometheus "$PROMETHEUS_MODULE_VERSION" prometheus ./cmd/prometheus \
        -tags "$PROMETHEUS_TAGS" -ldflags "-s -w $(common_version v3.${PROMETHEUS_MODULE_VERSION#v0.3})"
}
# The module lacks the built web UI its ui package embeds (ui/app/dist, made by npm and Elm): a writable copy gets a
# one-page placeholder in its place, so the stand-in serves its API and health endpoints but no UI.
build_alertmanager() {
    local dir="$1" src
    src=$(go mod download -json "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
    cp -r "$src" "$dir/src" && chmod -R u+w "$dir/src"
    mkdir -p "$dir/src/ui/app/dist"
    # Served gzipped only (ui/web.go), as the release's build leaves it: its probes' "/" answers from this.
    echo '<!DOCTYPE html><title>Alertmanager stand-in</title><p>No web UI in this build.</p>' |
        gzip -9n >"$dir/src/ui/app/dist/index.html.gz"
    (cd "$dir/src" && GOWORK=off go build -mod=readonly -trimpath -o "$dir/bin/alertmanager" \
        -ldflags "-s -w $(common_version "$ALERTMANAGER_VERSION")" ./cmd/alertmanager)
}
# The root module replaces its nested pkg/client and pkg/apis/monitoring modules with folders its zip lacks: a writable
# copy points them at the same release's published modules instead.
build_config_reloader() {
    local dir="$1" src m
    src=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
        sed -n 's/.*"Dir": "\(.*\)",/\1/p')
    cp -r "$src" "$dir/src" && chmod -R u+w "$dir/src"
    (
        cd "$dir/src"
        for m in pkg/client pkg/apis/monitoring; do
            m="github.com/prometheus-operator/prometheus-operator/$m"
            go mod edit -replace "$m=$m@$PROMETHEUS_OPERATOR_VERSION"
        done
        GOWORK=off go build -mod=mod -trimpath -o "$dir/bin/prometheus-config-reloader" \
            -ldflags "-s -w $(common_version "$PROMETHEUS_OPERATOR_VERSION")" ./cmd/prometheus-config-reloader
    )
}
build_kube_state_metrics() {
    mirror_build "$1" k8s.io/kube-state-metrics/v2 "$KUBE_STATE_METRICS_VERSION" kube-state-metrics . \
        -ldflags "-s -w $(common_version "$KUBE_STATE_METRICS_VERSION")"
}
build_statsd_exporter() {
    mirror_build "$1" github.com/prometheus/statsd_exporter "$STATSD_EXPORTER_VERSION" statsd_exporter . \
        -ldflags "-s -w $(common_version "$STATSD_EXPORTER_VERSION")"
}
build_redis_exporter() {
    mirror_build "$1" github.com/oliver006/redis_exporter "$REDIS_EXPORTER_VERSION" redis_exporter . \
        -ldflags "-s -w -X main.BuildVersion=$REDIS_EXPORTER_VERSION"
}

build "$CACHE/kubernetes-$KUBERNETES_VERSION-$(printf '%s\n' "${KUBERNETES_CMDS[@]}" | cksum | cut -c1-8)" build_kubernetes
build "$CACHE/etcd-$ETCD_VERSION" build_etcd
build "$CACHE/helm-$HELM_VERSION" build_helm
build "$CACHE/actionlint-$ACTIONLINT_VERSION" build_actionlint
build "$CACHE/pulumi-$PULUMI_VERSION" build_pulumi
build "$CACHE/coredns-$COREDNS_VERSION-$(printf '%s\n' "${COREDNS_PLUGINS[@]}" | cksum | cut -c1-8)" build_coredns
build "$CACHE/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION" build_local_path_provisioner
# Keyed by the patch too: the added files and the function that applies them.
KNP_PATCH=$({ declare -f build_kube_network_policies; cat scripts/kube-network-policies/*.go; } | sha256sum | cut -c1-12)
build "$CACHE/kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION-$KNP_PATCH" build_kube_network_policies
build "$CACHE/node-images-$(cat test/node-images/go.mod test/node-images/cmd/*/*.go | sha256sum | cut -c1-12)" build_node_images
# The mirror's programs, one after another (2 cores); they share the Go build cache where their modules agree.
build "$CACHE/cnpg-manager-$CNPG_VERSION" build_cnpg
build "$CACHE/prometheus-$PROMETHEUS_MODULE_VERSION-$(echo "$PROMETHEUS_TAGS" | cksum | cut -c1-8)" build_prometheus
build "$CACHE/alertmanager-$ALERTMANAGER_VERSION" build_alertmanager
build "$CACHE/prometheus-config-reloader-$PROMETHEUS_OPERATOR_VERSION" build_config_reloader
build "$CACHE/kube-state-metrics-$KUBE_STATE_METRICS_VERSION" build_kube_state_metrics
build "$CACHE/statsd_exporter-$STATSD_EXPORTER_VERSION" build_statsd_exporter
build "$CACHE/redis_exporter-$REDIS_EXPORTER_VERSION" build_redis_exporter
K8S_PLUGIN_DIR="$CACHE/pulumi-kubernetes-$PULUMI_K8S_PLUGIN_VERSION-${PULUMI_K8S_MODULE_VERSION##*-}"
build "$K8S_PLUGIN_DIR" build_pulumi_kubernetes
# The version the plugin was built as, beside its binary: tools/plugins.ts installs it under this version and refuses
# one the @pulumi/kubernetes SDK does not ask for (package.json changed, tools not rebuilt).
printf '%s\n' "$PULUMI_K8S_PLUGIN_VERSION" >"$K8S_PLUGIN_DIR/version"

for t in "${timings[@]}"; do echo "cold build $t" >&2; done
echo "$BIN"
