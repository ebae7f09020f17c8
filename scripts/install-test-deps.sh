#!/usr/bin/env bash
# Installs the tools the test suite needs beyond npm packages (run as root on Debian, as CI does).
set -euo pipefail

if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
fi
