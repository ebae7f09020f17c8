#!/usr/bin/env bash
# Node.js 24, the current LTS, which the Pulumi packages (Node.js 22 or later) and this project target. Source it:
#   source scripts/node.sh
# Where `node` is missing or older than 24, it installs the pinned release from the npm registry (the Node binary as
# the package node-linux-<arch>, with a pinned npm) under $HOME/.cache/fx-ml-node/<version> and puts it first on
# PATH; a second run reuses that folder. Installing needs npm (any version); on Debian without one it installs
# Debian's npm first (as root). FX_NODE_INSTALL=0 only checks. On other systems (macOS), install Node.js 24 yourself.

# The release is pinned once, in .node-version (the GitHub workflow's setup-node reads the same file).
FX_NODE_VERSION="$(cat "$(dirname "${BASH_SOURCE[0]}")/../.node-version")"
FX_NPM_VERSION=11.21.2
FX_NODE_MAJOR="${FX_NODE_VERSION%%.*}"

# node_major: the major version of the `node` on PATH, or 0 without one.
fx_node_major() {
    local version
    version="$(node --version 2>/dev/null || true)"
    version="${version#v}"
    echo "${version%%.*}" | grep -E '^[0-9]+$' || echo 0
}

fx_ensure_node() {
    if [ "$(fx_node_major)" -ge "$FX_NODE_MAJOR" ]; then
        return 0
    fi
    if [ "${FX_NODE_INSTALL:-1}" = 0 ] || [ "$(uname -s)" != Linux ]; then
        echo "error: Node.js ${FX_NODE_MAJOR} is needed (found $(node --version 2>/dev/null || echo none)): install it from https://nodejs.org/" >&2
        return 1
    fi
    local arch
    case "$(uname -m)" in
        x86_64 | amd64) arch=x64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *)
            echo "error: no Node.js ${FX_NODE_VERSION} package for $(uname -m); install Node.js ${FX_NODE_MAJOR}: https://nodejs.org/" >&2
            return 1
            ;;
    esac
    local prefix="${HOME}/.cache/fx-ml-node/${FX_NODE_VERSION}-${arch}"
    if [ ! -x "${prefix}/node_modules/.bin/node" ] || [ ! -x "${prefix}/node_modules/.bin/npm" ]; then
        if ! command -v npm >/dev/null 2>&1; then
            if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
                echo "==> installing Debian's npm to fetch Node.js ${FX_NODE_VERSION}" >&2
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
            else
                echo "error: Node.js ${FX_NODE_MAJOR} is needed and there is no npm to fetch it with: install Node.js ${FX_NODE_MAJOR}: https://nodejs.org/" >&2
                return 1
            fi
        fi
        echo "==> installing Node.js ${FX_NODE_VERSION} (node-linux-${arch}) and npm ${FX_NPM_VERSION} into ${prefix}" >&2
        rm -rf "$prefix"
        mkdir -p "$prefix"
        printf '{"name":"fx-ml-node","private":true}\n' >"${prefix}/package.json"
        npm install --prefix "$prefix" --no-audit --no-fund --no-save --no-update-notifier --loglevel=error \
            "node-linux-${arch}@${FX_NODE_VERSION}" "npm@${FX_NPM_VERSION}" >&2
    fi
    export PATH="${prefix}/node_modules/.bin:${PATH}"
    hash -r
    if [ "$(node --version)" != "v${FX_NODE_VERSION}" ]; then
        echo "error: ${prefix} did not give Node.js ${FX_NODE_VERSION} (got $(node --version))" >&2
        return 1
    fi
}

fx_ensure_node
