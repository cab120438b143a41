-- verification and tamper detection
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
RESET client_min_messages;
CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);
INSERT INTO accounts SELECT g, 'owner ' || g, g * 10 FROM generate_series(1, 6) g;
SELECT chainstore.track('accounts', backfill => true);
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
SELECT chainstore.seal_batch();
UPDATE accounts SET balance = balance + 1 WHERE id = 2;
DELETE FROM accounts WHERE id = 6;

SELECT status, detail, version, batch_id IS NOT NULL AS sealed FROM chainstore.verify_row('accounts', '{"id": 1}');
SELECT status, detail, version FROM chainstore.verify_row('accounts', '{"id": 2}');
SELECT status, detail, version FROM chainstore.verify_row('accounts', '{"id": 6}');
SELECT * FROM chainstore.verify_table('accounts');
SELECT pk, version, op, status FROM chainstore.verification_status WHERE label = 'public.accounts' ORDER BY pk;
SELECT label, depth FROM chainstore.outbox_stats;
SELECT version, op, forgotten, batch_id IS NOT NULL AS sealed, cardinality(proof) > 0 AS has_proof
  FROM chainstore.record_history('accounts', '{"id": 1}');

-- the fingerprint follows the rows, not the history
SELECT chainstore.table_fingerprint('accounts') AS fp1 \gset
CREATE TABLE accounts_copy (LIKE accounts INCLUDING ALL);
SELECT chainstore.track('accounts_copy');
INSERT INTO accounts_copy SELECT * FROM accounts ORDER BY id DESC;
-- same rows under another label: different records, different fingerprint
SELECT chainstore.table_fingerprint('accounts_copy') <> :'fp1' AS label_matters;
-- the same rows written in another order, with other history, give the same fingerprint
SELECT chainstore.table_fingerprint('accounts_copy') AS fp_copy \gset
DELETE FROM accounts_copy;
INSERT INTO accounts_copy SELECT * FROM accounts ORDER BY id;
UPDATE accounts_copy SET owner = owner;
SELECT chainstore.table_fingerprint('accounts_copy') = :'fp_copy' AS history_does_not_matter;
SELECT length(chainstore.table_fingerprint('accounts')) AS fp_len;

-- tampering by the owner with capture disabled
ALTER TABLE accounts DISABLE TRIGGER chainstore_capture;
UPDATE accounts SET balance = 1000000 WHERE id = 3;
INSERT INTO accounts VALUES (7, 'intruder', 1);
DELETE FROM accounts WHERE id = 4;
INSERT INTO accounts VALUES (6, 'ghost', 0);
ALTER TABLE accounts ENABLE TRIGGER chainstore_capture;
SELECT * FROM chainstore.verify_table('accounts');
SELECT status, detail FROM chainstore.verify_row('accounts', '{"id": 3}');
SELECT status, detail FROM chainstore.verify_row('accounts', '{"id": 4}');
SELECT status, detail FROM chainstore.verify_row('accounts', '{"id": 6}');
SELECT status, detail FROM chainstore.verify_row('accounts', '{"id": 7}');
SELECT chainstore.table_fingerprint('accounts') <> :'fp1' AS fingerprint_changed;

-- tampering with chainstore's own tables
SELECT table_id AS acc FROM chainstore.tracked WHERE label = 'public.accounts' \gset
UPDATE chainstore.versions SET prev_hash = chainstore.sha256('x')
 WHERE table_id = :acc AND version = 2 AND record_key = chainstore.record_key('accounts', '{"id": 1}');
UPDATE chainstore.versions SET leaf = chainstore.sha256('y')
 WHERE table_id = :acc AND record_key = chainstore.record_key('accounts', '{"id": 5}');
SELECT problem, pk, version FROM chainstore.verify_table('accounts') WHERE problem NOT LIKE '%outside capture';
SELECT status, detail FROM chainstore.verify_row('accounts', '{"id": 1}');
SELECT status, detail FROM chainstore.verify_row('accounts', '{"id": 5}');
-- a changed leaf also breaks the batch that holds it
SELECT ok, detail LIKE 'root recomputed from the stored leaves is %' AS root_differs
  FROM chainstore.verify_batch((SELECT p.batch_id FROM chainstore.proofs p JOIN chainstore.versions v USING (version_id)
                                 WHERE v.table_id = :acc AND v.record_key = chainstore.record_key('accounts', '{"id": 5}')));

-- forgotten records are shown as such, not as tampered
SELECT chainstore.forget('accounts', '{"id": 2}');
SELECT status FROM chainstore.verify_row('accounts', '{"id": 2}');
SELECT status FROM chainstore.verification_status WHERE label = 'public.accounts' AND pk = '{"id": 2}';
SELECT count(*) AS problems_for_2 FROM chainstore.verify_table('accounts') WHERE pk = '{"id": 2}';

-- errors
SELECT * FROM chainstore.verify_row('no_such', '{"id": 1}');
SELECT * FROM chainstore.verify_row('accounts_copy', NULL);
SELECT * FROM chainstore.verify_row('accounts', '{"id": 99}');
SELECT * FROM chainstore.verify_row('accounts', '{"owner": "x"}');
CREATE TABLE untracked (id int PRIMARY KEY);
SELECT * FROM chainstore.verify_table('untracked');
SELECT chainstore.table_fingerprint('untracked');
SELECT * FROM chainstore.record_history('untracked', '{"id": 1}');
SELECT chainstore.canonical('untracked', '{"id": 1}');
SELECT chainstore.canonical('accounts', '{"id": 99}') IS NULL AS absent_row_null;

-- verify_table reports progress on big tables
CREATE TABLE wide (id int PRIMARY KEY, v int);
SELECT chainstore.track('wide');
INSERT INTO wide SELECT g, g FROM generate_series(1, 2100) g;
SET chainstore.progress_rows = 1000;
SELECT count(*) FROM chainstore.verify_table('wide');
RESET chainstore.progress_rows;
