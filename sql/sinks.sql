-- sinks: configuration, privileges, deliveries created at sealing, the manifest
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
DROP ROLE IF EXISTS cs_sink_admin;
RESET client_min_messages;

SELECT chainstore.add_sink('ipfs-a', 'ipfs', ARRAY['http://127.0.0.1:5001', 'http://127.0.0.1:5002'],
                           '{"include_record_hash": false}');
SELECT name, kind, endpoints, options, enabled FROM chainstore.sinks;

-- refused: credentials or other schemes in endpoints, unknown kinds, bad options
SELECT chainstore.add_sink('bad', 'ipfs', ARRAY['http://user:secret@127.0.0.1:5001']);
SELECT chainstore.add_sink('bad', 'ipfs', ARRAY['file:///etc/passwd']);
SELECT chainstore.add_sink('bad', 'ipfs', '{}');
SELECT chainstore.add_sink('bad', 'ipfs', ARRAY[NULL]);
SELECT chainstore.add_sink('bad', 'ftp', ARRAY['http://127.0.0.1:1']);
SELECT chainstore.add_sink('bad', 'ipfs', ARRAY['http://127.0.0.1:1'], '[]');
SELECT chainstore.add_sink('ipfs-a', 'ipfs', ARRAY['http://127.0.0.1:1']);
SELECT chainstore.alter_sink('nope', enabled => false);
SELECT chainstore.drop_sink('nope');

-- an administrator may pause a sink but not repoint it
CREATE ROLE cs_sink_admin IN ROLE chainstore_admin;
SET ROLE cs_sink_admin;
SELECT chainstore.alter_sink('ipfs-a', enabled => false);
SELECT chainstore.alter_sink('ipfs-a', endpoints => ARRAY['http://attacker.example:80']);
SELECT chainstore.alter_sink('ipfs-a', options => '{}');
SELECT chainstore.add_sink('mine', 'ipfs', ARRAY['http://127.0.0.1:1']);
SELECT chainstore.drop_sink('ipfs-a');
UPDATE chainstore.sinks SET endpoints = ARRAY['http://attacker.example:80'];
RESET ROLE;
SELECT name, endpoints, enabled FROM chainstore.sinks;
SELECT chainstore.alter_sink('ipfs-a', endpoints => ARRAY['http://127.0.0.1:5003'], enabled => true);
SELECT name, endpoints, enabled FROM chainstore.sinks;

-- sealing creates one delivery per enabled sink
SELECT chainstore.add_sink('ipfs-off', 'ipfs', ARRAY['http://127.0.0.1:5004'], enabled => false);
CREATE TABLE sink_notes (id int PRIMARY KEY, body text);
SELECT chainstore.track('sink_notes');
INSERT INTO sink_notes VALUES (1, 'a'), (2, 'b'), (3, 'c');
SELECT chainstore.seal_batch();
SELECT d.batch_id, s.name, d.state, d.attempts FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id);
SELECT sink, state, batches FROM chainstore.delivery_queue;
SELECT label, status, sinks, anchored, verified FROM chainstore.verification_status ORDER BY pk;

-- retry only requeues dead letters
SELECT chainstore.retry(1, 'ipfs-a');
UPDATE chainstore.deliveries SET state = 'dead', attempts = 8, last_error = 'x';
SELECT chainstore.retry(1, 'ipfs-a');
SELECT state, attempts, last_error FROM chainstore.deliveries;
UPDATE chainstore.deliveries SET state = 'dead';
SELECT status FROM chainstore.verification_status LIMIT 1;

-- the manifest: documented fields, proofs that verify, no record hashes unless asked
SELECT jsonb_object_keys(chainstore.batch_manifest(1)) ORDER BY 1;
SELECT m->>'format' AS format, (m->>'record_count')::int AS records, jsonb_array_length(m->'records') AS listed,
       m->>'root' = '0x' || encode(b.root, 'hex') AS root_ok
  FROM chainstore.batches b, chainstore.batch_manifest(b.batch_id) m;
SELECT r->'pk' AS pk, r->>'table' AS tbl, r ? 'record_hash' AS has_record_hash,
       chainstore.verify_proof(decode(substr(r->>'leaf', 3), 'hex'),
                               ARRAY(SELECT decode(substr(x, 3), 'hex') FROM jsonb_array_elements_text(r->'proof') x),
                               decode(substr(m->>'root', 3), 'hex')) AS proof_ok
  FROM chainstore.batch_manifest(1) m, jsonb_array_elements(m->'records') r ORDER BY r->'pk';
SELECT bool_and(r ? 'record_hash') AS all_have_record_hash
  FROM jsonb_array_elements(chainstore.batch_manifest(1, include_record_hash => true)->'records') r;
SELECT chainstore.batch_manifest(99) IS NULL AS unknown_batch_null;

-- without shared_preload_libraries there are no breakers to set
SELECT chainstore.circuit('http://127.0.0.1:5001', 'open');
SELECT count(*) FROM chainstore.circuit_states();
SELECT sink, endpoint, circuit FROM chainstore.sink_health ORDER BY 1, 2;

-- dropping a sink drops its deliveries
SELECT chainstore.drop_sink('ipfs-a');
SELECT count(*) FROM chainstore.deliveries;
DROP ROLE cs_sink_admin;
