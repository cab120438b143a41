#!/usr/bin/env bash
# chainstore's demo on a fresh Debian machine:
#   bash scripts/demo.sh
# Starts a throwaway PostgreSQL 15 cluster with chainstore preloaded and a
# local IPFS node (Kubo RPC API), tracks a sample marketplace schema, streams
# writes, lets the worker seal Merkle batches, publish them to IPFS, write the
# CIDs back into the rows and verify them, shows the analyst's views, catches
# a tampered row and checks a proof with an outside tool. Stops everything it
# started.
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
IPFS_PORT=${CHAINSTORE_DEMO_IPFS_PORT:-54331}
IPFS_PID=
stop_all() {
    cluster_stop "$WORK/pg"
    [ -n "$IPFS_PID" ] && kill "$IPFS_PID" 2>/dev/null && wait "$IPFS_PID" 2>/dev/null
    echo "demo: cluster and IPFS node stopped"
}
trap stop_all EXIT

# a local IPFS node speaking the Kubo RPC API (test/ipfs-node), on loopback
node test/ipfs-node/server.mjs --port "$IPFS_PORT" --repo "$WORK/ipfs" --host 127.0.0.1 > "$WORK/ipfs.log" 2>&1 &
IPFS_PID=$!
for _ in $(seq 1 100); do grep -q ready "$WORK/ipfs.log" && break; sleep 0.1; done
grep -q ready "$WORK/ipfs.log" || { echo "demo: the IPFS node did not start"; cat "$WORK/ipfs.log"; exit 1; }

cluster_start "$WORK/pg" "$PORT" \
    "shared_preload_libraries = 'chainstore'" \
    "chainstore.databases = 'postgres'" \
    "chainstore.batch_size = 200" \
    "chainstore.max_batch_delay = 500" \
    "chainstore.verify_delay = 3"
export PGHOST="$WORK/pg" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "== 1. CREATE EXTENSION, an IPFS sink, and the marketplace tables tracked"
q -c "CREATE EXTENSION chainstore"
q -c "SELECT chainstore.add_sink('ipfs', 'ipfs', ARRAY['http://127.0.0.1:$IPFS_PORT'])" >/dev/null
q -f demo/schema.sql >/dev/null
q -c "SELECT label, key_columns, exclude_columns, writeback FROM chainstore.tracked_tables"

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
done
q -c "SELECT * FROM chainstore.outbox_stats"

echo "== 3. the analyst's view while the worker seals, publishes and verifies"
q -c "SELECT label, status, count(*) FROM chainstore.verification_status GROUP BY 1, 2 ORDER BY 1, 2"
for _ in $(seq 1 120); do
    [ "$(q -t -A -c "SELECT count(*) = 0 FROM chainstore.outbox")" = t ] &&
    [ "$(q -t -A -c "SELECT count(*) > 0 AND bool_and(state = 'verified' AND delayed_verified_at IS NOT NULL) FROM chainstore.deliveries")" = t ] && break
    sleep 0.5
done
q -c "SELECT label, status, count(*) FROM chainstore.verification_status GROUP BY 1, 2 ORDER BY 1, 2"
q -c "SELECT sink, state, batches FROM chainstore.delivery_queue"
q -c "SELECT d.batch_id, b.record_count, d.attestation->>'ipfs_cid' AS cid, d.delivered_at - b.sealed_at AS sealed_to_delivered
        FROM chainstore.deliveries d JOIN chainstore.batches b USING (batch_id) ORDER BY 1 LIMIT 5"
q -c "SELECT id, buyer, amount_usd, ipfs_cid FROM purchases ORDER BY id LIMIT 3"
q -c "SELECT sink, endpoint, circuit, requests_1h, failure_rate_1h, round(latency_p50_ms::numeric, 1) AS p50_ms FROM chainstore.sink_health"
q -c "SELECT sink, status, detail FROM chainstore.reconciliation_report"
q -c "SELECT b.batch_id, v.ok, v.detail FROM chainstore.batches b, chainstore.verify_batch(b.batch_id) v ORDER BY 1 LIMIT 3"
cid=$(q -t -A -c "SELECT attestation->>'ipfs_cid' FROM chainstore.deliveries ORDER BY batch_id LIMIT 1")
echo "the first manifest, read back from IPFS by its CID $cid:"
curl -s -X POST -o "$WORK/manifest.json" "http://127.0.0.1:$IPFS_PORT/api/v0/cat?arg=$cid"
head -c 300 "$WORK/manifest.json"; echo " ..."

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
echo "demo: done. Where to look: chainstore.verification_status, chainstore.delivery_queue,"
echo "      chainstore.sink_health, chainstore.reconciliation_report, chainstore.verify_table(),"
echo "      chainstore.record_history(); the encoding is specified in docs/canonical-encoding.md,"
echo "      the manifest in docs/manifest.md."
