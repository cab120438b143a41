-- the capture trigger
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
RESET client_min_messages;
CREATE TABLE items (
    id int,
    sku text,
    qty int,
    note text,
    touched_at timestamptz,
    PRIMARY KEY (id, sku)
);
SELECT chainstore.track('items', exclude_columns => '{touched_at}');

CREATE VIEW item_versions AS
SELECT chainstore.record_pk(v.record_key) AS pk, v.version, v.op,
       v.prev_hash = '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea AS genesis
  FROM chainstore.versions v JOIN chainstore.tracked t USING (table_id)
 WHERE t.label = 'public.items' ORDER BY v.version_id;

INSERT INTO items VALUES (1, 'a', 5, NULL, now()), (2, 'b', 1, 'x', now());
UPDATE items SET qty = 6 WHERE id = 1;
-- an update that changes no hashed column creates no version
UPDATE items SET qty = qty WHERE id = 1;
UPDATE items SET touched_at = now() + interval '1 day';
-- NULL and empty string are different values
UPDATE items SET note = '' WHERE id = 1;
DELETE FROM items WHERE id = 2;
-- re-inserting a deleted key continues its chain
INSERT INTO items VALUES (2, 'b', 7, NULL, NULL);
-- changing the key ends one record and starts another
UPDATE items SET sku = 'c' WHERE id = 2;
SELECT * FROM item_versions;

-- each version links to the previous one
SELECT bool_and(v.prev_hash = p.chain_hash) AS linked
  FROM chainstore.versions v
  JOIN chainstore.versions p ON p.table_id = v.table_id AND p.record_key = v.record_key AND p.version = v.version - 1;
-- hashes are what the encoding says
SELECT bool_and(v.record_hash = chainstore.sha256(chainstore.canonical('items', chainstore.record_pk(v.record_key)))) AS hash_matches
  FROM chainstore.versions v
 WHERE v.version_id IN (SELECT max(version_id) FROM chainstore.versions GROUP BY record_key) AND v.op <> 'D';
SELECT bool_and(leaf_input = chainstore.sha256(salt || chain_hash) AND leaf = chainstore.merkle_leaf(leaf_input)
                AND length(salt) = 16) AS leaves_ok,
       count(DISTINCT salt) = count(*) AS salts_distinct
  FROM chainstore.versions;

-- rolled back changes leave nothing behind, in the outbox or elsewhere
SELECT count(*) AS versions_before FROM chainstore.versions \gset
BEGIN;
INSERT INTO items VALUES (10, 'z', 1, NULL, NULL);
UPDATE items SET qty = 100 WHERE id = 1;
ROLLBACK;
BEGIN;
INSERT INTO items VALUES (11, 'z', 1, NULL, NULL);
SAVEPOINT s;
INSERT INTO items VALUES (12, 'z', 1, NULL, NULL);
ROLLBACK TO s;
COMMIT;
SELECT count(*) - :versions_before AS new_versions FROM chainstore.versions;
SELECT pk FROM item_versions WHERE pk->>'id' IN ('10', '11', '12');
SELECT count(*) AS outbox_rows, (SELECT count(*) FROM chainstore.versions) AS versions FROM chainstore.outbox;

-- a failed statement leaves nothing either
INSERT INTO items VALUES (20, 'q', 1, NULL, NULL), (1, 'a', 1, NULL, NULL);
SELECT count(*) FROM item_versions WHERE pk->>'id' = '20';

-- TRUNCATE is refused
TRUNCATE items;

-- the trigger function refuses to be misused
SELECT chainstore.capture();
CREATE TABLE not_tracked (id int PRIMARY KEY);
CREATE TRIGGER t AFTER INSERT ON not_tracked FOR EACH ROW EXECUTE FUNCTION chainstore.capture();
INSERT INTO not_tracked VALUES (1);
CREATE TRIGGER tb BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION chainstore.capture();
INSERT INTO items VALUES (30, 'a', 1, NULL, NULL);
DROP TRIGGER tb ON items;

-- forget: salts are deleted, hashes stay
SELECT chainstore.forget('items', '{"id": 1, "sku": "a"}');
SELECT version, salt IS NULL AS forgotten FROM chainstore.versions
 WHERE record_key = chainstore.record_key('items', '{"id": 1, "sku": "a"}') ORDER BY version;
SELECT chainstore.forget('items', '{"id": 99, "sku": "a"}');
SELECT chainstore.forget('items', NULL);

-- the key round-trips through jsonb
SELECT chainstore.record_pk(chainstore.record_key('items', '{"sku": "a", "id": 1}'));
SELECT chainstore.record_key('items', '{"id": 1}');
SELECT chainstore.record_key('items', '{"id": 1, "sku": "a", "x": 2}');
SELECT chainstore.record_key('items', '[1]');
SELECT chainstore.record_key('items', '{"id": {"a": 1}, "sku": "a"}');
SELECT chainstore.record_key('items', '{"id": "one", "sku": "a"}');
SELECT chainstore.record_pk('\x00');
-- keys of other types render as JSON that reads back to the same key
CREATE TABLE keyed (k timestamptz, u uuid, d date, b bytea, PRIMARY KEY (k, u, d, b));
SELECT chainstore.track('keyed');
INSERT INTO keyed VALUES ('2024-05-06 07:08:09.123456+02', '00112233-4455-6677-8899-aabbccddeeff', '2024-01-31', '\xff00');
SELECT chainstore.record_pk(record_key) AS pk,
       chainstore.record_key('keyed', chainstore.record_pk(record_key)) = record_key AS round_trip
  FROM chainstore.versions v JOIN chainstore.tracked t USING (table_id) WHERE t.label = 'public.keyed';
