#!/usr/bin/env bash
# chainstore's whole test suite on a fresh Debian machine:
#   bash scripts/test.sh
# installs dependencies, builds with warnings as errors, installs the
# extension, and runs on throwaway clusters: pg_regress, the isolation specs,
# the TAP tests and the independent Node verifier.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. scripts/pgenv.sh

[ "${SKIP_DEPS:-0}" = 1 ] || bash scripts/install-deps.sh

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
make -s clean
make -s CS_WERROR=-Werror with_llvm=no
$SUDO make -s install with_llvm=no

WORK=$(mktemp -d /tmp/chainstore-test.XXXXXX)
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
PORT=${CHAINSTORE_TEST_PORT:-54320}
cleanup() { cluster_stop "$WORK/pg"; }
trap cleanup EXIT

passed=0
failed=0
step() {
    local name=$1
    shift
    echo "=== $name"
    if "$@"; then passed=$((passed + 1)); echo "--- ok: $name"
    else failed=$((failed + 1)); echo "--- FAILED: $name"; fi
}

cluster_start "$WORK/pg" "$PORT"
export PGHOST="$WORK/pg" PGPORT="$PORT" PGUSER=postgres

regress() {
    if ! make -s installcheck with_llvm=no; then
        [ -f regression.diffs ] && cat regression.diffs
        [ -f output_iso/regression.diffs ] && cat output_iso/regression.diffs
        return 1
    fi
}
step "pg_regress and isolation" regress

tap() {
    # PostgreSQL::Test::Cluster runs initdb, which must not run as root, and
    # the tests start the Node peers from the checkout: if the postgres user
    # cannot read the checkout, give it a copy
    local tapdir="$WORK/tap" root="$ROOT"
    mkdir -p "$tapdir"
    if ! as_pg test -r "$ROOT/package.json" -a -x "$ROOT/node_modules"; then
        root="$WORK/checkout"
        mkdir -p "$root"
        cp -r "$ROOT/t" "$ROOT/test" "$ROOT/node_modules" "$ROOT/package.json" "$root/"
    fi
    cp -r "$ROOT/t" "$tapdir/t"
    [ "$(id -u)" -eq 0 ] && chown -R postgres "$tapdir" "$WORK/checkout" 2>/dev/null
    (cd "$tapdir" && as_pg env PATH="$PATH" TESTDIR="$tapdir" CHAINSTORE_ROOT="$root" \
        PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
        prove -I /usr/lib/postgresql/15/lib/pgxs/src/test/perl t/*.pl)
}
step "TAP tests" tap

verifier() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS verifier" -c "CREATE DATABASE verifier"
    CHAINSTORE_TEST_PGURL="postgresql:///verifier?host=$PGHOST&port=$PGPORT&user=postgres" \
        node --test test/verifier/ test/cid/ test/ipfs-node/ test/hostile-sink/
}
step "Node tests: independent verifier, CID cross-check, IPFS node, hostile sink" verifier

echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
