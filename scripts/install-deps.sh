#!/usr/bin/env bash
# Install everything chainstore needs to build, test and run its demo on a
# fresh Debian 12 machine: PostgreSQL 15 with headers pinned to the installed
# server, OpenSSL, the TAP test modules, and the Node tools from the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# the server first; one that is already installed is left alone (installing it
# again would upgrade it to the newest point release under a running cluster)
if ! dpkg-query -W -f='${Status}' postgresql-15 2>/dev/null | grep -q "install ok installed"; then
    $SUDO apt-get install -y -qq postgresql-15 >/dev/null
fi
V=$(dpkg-query -W -f='${Version}' postgresql-15)
# headers pinned to the server's version, so apt never replaces a running server
$SUDO apt-get install -y -qq \
    "postgresql-server-dev-15=$V" \
    build-essential libssl-dev libcurl4-openssl-dev libjansson-dev libipc-run-perl ca-certificates curl >/dev/null
# Node: keep one that is already there (e.g. nodesource's, which bundles npm
# and conflicts with Debian's npm package); otherwise Debian's
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
echo "install-deps: PostgreSQL $V, $(node --version), dependencies installed"
