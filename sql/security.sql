-- privileges: application roles, readers, administrators
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
RESET client_min_messages;
SET client_min_messages = warning;
DROP ROLE IF EXISTS cs_app;
DROP ROLE IF EXISTS cs_analyst;
DROP ROLE IF EXISTS cs_dba;
RESET client_min_messages;
CREATE ROLE cs_app;
CREATE ROLE cs_analyst IN ROLE chainstore_reader;
CREATE ROLE cs_dba IN ROLE chainstore_admin;
GRANT CREATE ON SCHEMA public TO cs_app, cs_dba;

CREATE TABLE orders (id int PRIMARY KEY, item text);
GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO cs_app;
SELECT chainstore.track('orders');

-- an application role writes a tracked table with no rights on chainstore
SET ROLE cs_app;
INSERT INTO orders VALUES (1, 'book'), (2, 'pen');
UPDATE orders SET item = 'ink' WHERE id = 2;
DELETE FROM orders WHERE id = 1;
SELECT count(*) FROM chainstore.versions;
SELECT chainstore.seal_batch();
SELECT chainstore.track('orders');
-- nor can it switch capture off: only the owner can
ALTER TABLE orders DISABLE TRIGGER chainstore_capture;
DROP TRIGGER chainstore_capture ON orders;
-- nor attach the capture function elsewhere
CREATE TABLE app_own (id int PRIMARY KEY);
CREATE TRIGGER x AFTER INSERT ON app_own FOR EACH ROW EXECUTE FUNCTION chainstore.capture();
RESET ROLE;
SELECT chainstore.record_pk(record_key), op FROM chainstore.versions v JOIN chainstore.tracked t USING (table_id)
 WHERE t.label = 'public.orders' ORDER BY version_id;

-- a reader sees views and verifies, and changes nothing
GRANT SELECT ON orders TO chainstore_reader;
SET ROLE cs_analyst;
SELECT status FROM chainstore.verify_row('orders', '{"id": 2}');
SELECT count(*) FROM chainstore.verify_table('orders');
SELECT count(*) FROM chainstore.verification_status WHERE label = 'public.orders';
SELECT depth FROM chainstore.outbox_stats WHERE label = 'public.orders';
SELECT chainstore.seal_batch();
SELECT chainstore.forget('orders', '{"id": 2}');
UPDATE chainstore.versions SET salt = NULL;
DELETE FROM chainstore.outbox;
INSERT INTO chainstore.tracked (relid, label, key_columns) VALUES ('orders', 'x', '{id}');
SELECT chainstore.untrack('orders');
RESET ROLE;

-- an administrator seals and forgets; tracking needs table ownership too
SET ROLE cs_dba;
SELECT chainstore.seal_batch() IS NOT NULL AS sealed;
SELECT chainstore.forget('orders', '{"id": 1}');
CREATE TABLE dba_table (id int PRIMARY KEY);
SELECT chainstore.track('dba_table');
INSERT INTO dba_table VALUES (1);
SELECT chainstore.untrack('orders');
RESET ROLE;

-- every SECURITY DEFINER function pins its search_path; so do all SQL-language ones
SELECT p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'chainstore' AND p.prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c')
   AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)
 ORDER BY 1;
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'chainstore' AND p.prosecdef ORDER BY 1;

-- nothing in chainstore is writable by PUBLIC
SELECT c.relname, a.privilege_type
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
       aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
 WHERE n.nspname = 'chainstore' AND a.grantee = 0;

DROP TABLE dba_table;
DROP TABLE app_own;
DROP OWNED BY cs_app, cs_analyst, cs_dba;
DROP ROLE cs_app;
DROP ROLE cs_analyst;
DROP ROLE cs_dba;
