-- sealing outbox rows into chained Merkle batches
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
RESET client_min_messages;
CREATE TABLE notes (id int PRIMARY KEY, body text);
SELECT chainstore.track('notes');
SELECT chainstore.seal_batch() IS NULL AS nothing_to_seal;
INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 25) g;

SELECT chainstore.seal_batch(10) AS batch;
SELECT chainstore.seal_batch(10) AS batch;
SELECT chainstore.seal_batch(10) AS batch;
SELECT chainstore.seal_batch(10) IS NULL AS drained;
SELECT count(*) AS outbox FROM chainstore.outbox;

-- batches take versions in version order, and each version is in exactly one batch
SELECT b.batch_id, b.record_count, min(p.version_id), max(p.version_id), count(*)
  FROM chainstore.batches b JOIN chainstore.proofs p USING (batch_id)
 GROUP BY b.batch_id, b.record_count ORDER BY b.batch_id;

-- the batch chain
SELECT b.batch_id,
       b.prev_batch_hash = coalesce(p.batch_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea) AS chained,
       b.batch_hash = chainstore.batch_hash(b.batch_id, b.prev_batch_hash, b.root, b.record_count, b.sealed_at) AS hash_ok,
       b.system_identifier <> 0 AS sysid, b.timeline >= 1 AS timeline
  FROM chainstore.batches b LEFT JOIN chainstore.batches p ON p.batch_id = b.batch_id - 1
 ORDER BY b.batch_id;
SELECT batch_id, last_batch_id = batch_id AS head_matches
  FROM chainstore.batches, chainstore.batch_head ORDER BY batch_id DESC LIMIT 1;

-- roots are computed from the members' leaves and every proof verifies
SELECT b.batch_id, chainstore.merkle_root(array_agg(v.leaf)) = b.root AS root_ok,
       bool_and(chainstore.verify_proof(v.leaf, chainstore.proof_nodes(p.proof), b.root)) AS proofs_ok,
       array_agg(p.leaf_index ORDER BY p.leaf_index) = array_agg(g.i::int ORDER BY g.i) AS indexes_ok
  FROM chainstore.batches b
  JOIN chainstore.proofs p USING (batch_id)
  JOIN chainstore.versions v USING (version_id)
  JOIN LATERAL (SELECT count(*) - 1 AS i FROM chainstore.proofs q
                 JOIN chainstore.versions w USING (version_id)
                WHERE q.batch_id = b.batch_id AND w.leaf <= v.leaf) g ON true
 GROUP BY b.batch_id, b.root ORDER BY b.batch_id;
SELECT * FROM chainstore.verify_batch(1);
SELECT * FROM chainstore.verify_batch(3);

-- errors
SELECT chainstore.seal_batch(0);
SELECT chainstore.seal_batch(NULL) IS NULL AS strict;
SELECT * FROM chainstore.verify_batch(999);
SELECT * FROM chainstore.verify_batch(NULL);

-- a tampered batch is reported
UPDATE chainstore.batches SET record_count = 9 WHERE batch_id = 2;
SELECT * FROM chainstore.verify_batch(2);
UPDATE chainstore.batches SET record_count = 10 WHERE batch_id = 2;
UPDATE chainstore.proofs SET proof = substring(proof FROM 33) || substring(proof FOR 32)
 WHERE version_id = (SELECT min(version_id) FROM chainstore.proofs WHERE batch_id = 2);
SELECT ok, detail FROM chainstore.verify_batch(2);
