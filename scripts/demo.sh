#!/usr/bin/env bash
# chainstore's demo on a fresh Debian machine:
#   bash scripts/demo.sh
# Starts a throwaway PostgreSQL 15 cluster with chainstore, tracks a sample
# marketplace schema, streams writes, seals Merkle batches, shows the
# analyst's views, catches a tampered row and checks a proof with an outside
# tool. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pgenv.sh

[ "${SKIP_DEPS:-0}" = 1 ] || bash scripts/install-deps.sh
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
make -s with_llvm=no
$SUDO make -s install with_llvm=no

WORK=$(mktemp -d /tmp/chainstore-demo.XXXXXX)
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
PORT=${CHAINSTORE_DEMO_PORT:-54330}
trap 'cluster_stop "$WORK/pg"; echo "demo: cluster stopped"' EXIT
cluster_start "$WORK/pg" "$PORT"
export PGHOST="$WORK/pg" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "== 1. CREATE EXTENSION and track the marketplace tables"
q -c "CREATE EXTENSION chainstore"
q -f demo/schema.sql >/dev/null
q -c "SELECT label, key_columns, exclude_columns FROM chainstore.tracked_tables"

echo "== 2. a stream of writes (bounded: 20 rounds)"
for round in $(seq 1 20); do
    q <<SQL
INSERT INTO credential_listings (id, issuer, credential, price_usd, attributes)
SELECT $round * 100 + g, 'issuer-' || g, 'credential ' || ($round * 100 + g), 10 + g,
       jsonb_build_object('level', g % 3, 'round', $round)
  FROM generate_series(1, 25) g;
INSERT INTO purchases (id, listing_id, buyer, amount_usd, ip_address)
SELECT $round * 100 + g, $round * 100 + g, 'buyer-' || (g % 7), 10 + g, ('192.0.2.' || g)::inet
  FROM generate_series(1, 20) g;
UPDATE credential_listings SET price_usd = price_usd * 0.9 WHERE id = $round * 100 + 1;
SQL
    # seal while the stream runs, as the worker will
    if [ $((round % 5)) -eq 0 ]; then q -t -c "SELECT 'sealed batch ' || chainstore.seal_batch(150)"; fi
done
q -c "SELECT * FROM chainstore.outbox_stats"

echo "== 3. the analyst's view: pending and sealed records"
q -c "SELECT label, status, count(*) FROM chainstore.verification_status GROUP BY 1, 2 ORDER BY 1, 2"
while [ "$(q -t -A -c "SELECT chainstore.seal_batch(400) IS NOT NULL")" = t ]; do :; done
q -c "SELECT label, status, count(*) FROM chainstore.verification_status GROUP BY 1, 2 ORDER BY 1, 2"
q -c "SELECT batch_id, record_count, encode(root, 'hex') AS root FROM chainstore.batches ORDER BY batch_id"
q -c "SELECT b.batch_id, v.ok, v.detail FROM chainstore.batches b, chainstore.verify_batch(b.batch_id) v ORDER BY 1"

echo "== 4. someone with owner rights disables capture and edits a purchase"
q <<'SQL'
ALTER TABLE purchases DISABLE TRIGGER chainstore_capture;
UPDATE purchases SET amount_usd = 0.01 WHERE id = 1005;
ALTER TABLE purchases ENABLE TRIGGER chainstore_capture;
SQL
q -c "SELECT * FROM chainstore.verify_table('purchases')"
q -c "SELECT status, detail FROM chainstore.verify_row('purchases', '{\"id\": 1005}')"

echo "== 5. a row's proof checked by an outside tool (OpenZeppelin's merkle-tree library)"
read -r root leaf_input proof < <(q -t -A -F ' ' -c "
    SELECT '0x' || encode(b.root, 'hex'), '0x' || encode(v.leaf_input, 'hex'),
           coalesce((SELECT string_agg('0x' || encode(n, 'hex'), ' ') FROM unnest(chainstore.proof_nodes(p.proof)) n), '')
      FROM chainstore.versions v JOIN chainstore.proofs p USING (version_id) JOIN chainstore.batches b USING (batch_id)
     WHERE v.record_key = chainstore.record_key('credential_listings', '{\"id\": 201}')
     ORDER BY v.version DESC LIMIT 1")
# shellcheck disable=SC2086
node demo/check-proof.mjs "$root" "$leaf_input" $proof
q -c "SELECT version, op, captured_at, batch_id, encode(chain_hash, 'hex') AS chain_hash FROM chainstore.record_history('credential_listings', '{\"id\": 201}')"

echo
echo "demo: done. Where to look: chainstore.verification_status, chainstore.outbox_stats,"
echo "      chainstore.tracked_tables, chainstore.verify_table(), chainstore.record_history();"
echo "      the encoding is specified in docs/canonical-encoding.md."
