-- chainstore.track() and untrack(): what is accepted, what is refused and why
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
RESET client_min_messages;
CREATE TABLE purchases (
    id bigint PRIMARY KEY,
    buyer text NOT NULL,
    amount numeric(12,2),
    ip_address inet,
    cid_column text
);
INSERT INTO purchases VALUES (1, 'alice', 10.50, '10.0.0.1', NULL), (2, 'bob', 20, NULL, NULL);

-- refused: no primary key, temporary, unlogged, partitioned, views, unknown tables
CREATE TABLE nopk (a int);
SELECT chainstore.track('nopk');
CREATE TEMP TABLE tmp (a int PRIMARY KEY);
SELECT chainstore.track('tmp');
CREATE UNLOGGED TABLE unl (a int PRIMARY KEY);
SELECT chainstore.track('unl');
CREATE TABLE parted (a int PRIMARY KEY) PARTITION BY RANGE (a);
SELECT chainstore.track('parted');
CREATE VIEW v AS SELECT 1 AS a;
SELECT chainstore.track('v');
SELECT chainstore.track('no_such_table');
SELECT chainstore.track(NULL);
-- refused: a column type with no binary send function
CREATE TABLE acl_tab (id int PRIMARY KEY, a aclitem);
SELECT chainstore.track('acl_tab');
-- refused: bad exclude lists and write-back maps
SELECT chainstore.track('purchases', exclude_columns => '{nope}');
SELECT chainstore.track('purchases', exclude_columns => '{id}');
SELECT chainstore.track('purchases', exclude_columns => ARRAY[NULL]);
SELECT chainstore.track('purchases', writeback => '["cid_column"]');
SELECT chainstore.track('purchases', writeback => '{"ipfs_cid": 1}');
SELECT chainstore.track('purchases', writeback => '{"ipfs_cid": "nope"}');
-- nothing was left behind by the failures
SELECT count(*) FROM chainstore.tracked;

-- accepted, with backfill of the two existing rows
SELECT chainstore.track('public.purchases', exclude_columns => '{ip_address}',
                        backfill => true, writeback => '{"ipfs_cid": "cid_column"}');
SELECT label, key_columns, exclude_columns, writeback, active FROM chainstore.tracked;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'purchases'::regclass ORDER BY tgname;
SELECT chainstore.track('purchases');
SELECT label, versions, pending_versions, active FROM chainstore.tracked_tables;

-- untrack keeps history; re-tracking with backfill adds nothing for unchanged rows
SELECT chainstore.untrack('purchases');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'purchases'::regclass AND NOT tgisinternal;
SELECT chainstore.untrack('purchases');
UPDATE purchases SET amount = 99 WHERE id = 2;   -- not captured while untracked
SELECT chainstore.track('purchases', exclude_columns => '{ip_address}', backfill => true,
                        writeback => '{"ipfs_cid": "cid_column"}');
SELECT chainstore.record_pk(record_key) AS pk, version, op FROM chainstore.versions ORDER BY version_id;

-- a renamed table keeps its label
ALTER TABLE purchases RENAME TO orders;
INSERT INTO orders VALUES (3, 'carol', 1, NULL, NULL);
SELECT t.label, t.relid FROM chainstore.tracked t;
ALTER TABLE orders RENAME TO purchases;

-- backfill reports progress
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 2500) g;
SET chainstore.progress_rows = 1000;
SELECT chainstore.track('big', backfill => true);
RESET chainstore.progress_rows;
SELECT count(*) FROM chainstore.versions v JOIN chainstore.tracked t USING (table_id) WHERE t.label = 'public.big';

-- a dropped tracked table is marked, its history kept
DROP TABLE big;
SELECT label, relid IS NULL AS dropped, active FROM chainstore.tracked WHERE label = 'public.big';
-- a new table of the same name takes the label over
CREATE TABLE big (id int PRIMARY KEY, v text);
SELECT chainstore.track('big');
SELECT label, relid, active FROM chainstore.tracked WHERE label = 'public.big';

-- GUC prefix is reserved: typos are reported
SET chainstore.no_such_setting = 1;
