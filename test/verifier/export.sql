-- test/verifier/export.sql
--
-- Emits ONE JSON document with everything test/verifier/verify-db.mjs needs:
-- tracked tables (label, key/excluded columns, column types from the catalogs),
-- the current rows of active tracked tables as text forms under fixed settings
-- plus chainstore.canonical() of each row, all versions, the outbox, batches and
-- proofs.  Read-only; runs in one REPEATABLE READ snapshot.
--
-- Usage:
--   psql -X -d DB -f test/verifier/export.sql -o export.json
--   psql -X -d DB -v table=public.t -f test/verifier/export.sql   # rows of one table only
-- Variables:
--   table           optional; when set, only that table's rows are exported
--                   (versions, batches and proofs are always exported in full).
--   skip_canonical  optional; when set (to anything), chainstore.canonical() is
--                   not called and rows carry no "canonical" field.
--
-- Every value is exported as its text form (type output function) and every
-- bigint as a JSON string, so nothing loses precision in JSON.

\set ON_ERROR_STOP 1
\set QUIET 1
\pset pager off
\pset tuples_only on
\pset format unaligned
\if :{?table}
\else
\set table ''
\endif
\if :{?skip_canonical}
\set with_canonical false
\else
\set with_canonical true
\endif

-- fixed text forms (see docs/canonical-encoding.md and encoding.mjs)
SET client_encoding = 'UTF8';
SET TimeZone = 'UTC';
SET DateStyle = 'ISO';
SET IntervalStyle = 'iso_8601';
SET extra_float_digits = 3;
SET bytea_output = 'hex';
-- regclass output schema-qualifies everything outside pg_catalog
SET search_path = pg_catalog;

BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- Build one SELECT per active tracked table returning (table_id, rows jsonb):
-- each row is {"values": {column: text form or null}, "canonical": hex}.
-- num_nulls() tests the datum itself (a composite whose fields are all NULL is
-- not a NULL value, although "x IS NULL" would say so).
SELECT coalesce(string_agg(q, E'\nUNION ALL\n' ORDER BY table_id),
                'SELECT NULL::integer, NULL::jsonb WHERE false') AS rows_sql
FROM (
    SELECT t.table_id,
           format($q$SELECT %s::integer, coalesce((SELECT jsonb_agg(jsonb_build_object(
                 'values', jsonb_object(%L::text[], ARRAY[%s]::text[])%s))
               FROM %s AS r), '[]'::jsonb)$q$,
                  t.table_id,
                  cols.names::text,
                  cols.exprs,
                  CASE WHEN :with_canonical THEN
                      format($c$, 'canonical', encode(chainstore.canonical(%s::oid::regclass, jsonb_build_object(%s)), 'hex')$c$,
                             t.relid::oid, keys.args)
                  ELSE '' END,
                  t.relid::regclass) AS q
    FROM chainstore.tracked t
    JOIN pg_class c ON c.oid = t.relid
    CROSS JOIN LATERAL (
        SELECT array_agg(a.attname::text ORDER BY a.attnum) AS names,
               string_agg(format('CASE WHEN num_nulls(r.%1$I) = 1 THEN NULL ELSE format(%2$L, r.%1$I) END',
                                 a.attname, '%s'), ', ' ORDER BY a.attnum) AS exprs
        FROM pg_attribute a
        WHERE a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped
    ) cols
    CROSS JOIN LATERAL (
        SELECT string_agg(format('%L, r.%I', k, k), ', ' ORDER BY o) AS args
        FROM unnest(t.key_columns) WITH ORDINALITY AS u(k, o)
    ) keys
    WHERE t.active
      AND (:'table' = '' OR t.relid = to_regclass(nullif(:'table', '')))
) per_table
\gset

WITH RECURSIVE
tracked AS (
    SELECT t.*, c.oid IS NOT NULL AS present
    FROM chainstore.tracked t
    LEFT JOIN pg_class c ON c.oid = t.relid
),
-- every type reachable from a tracked column: array elements, domain bases,
-- composite attributes
type_closure(oid) AS (
    SELECT a.atttypid
    FROM pg_attribute a JOIN tracked t ON a.attrelid = t.relid
    WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION
    SELECT x.oid
    FROM type_closure tc
    JOIN pg_type p ON p.oid = tc.oid
    CROSS JOIN LATERAL (
        SELECT p.typelem WHERE p.typelem <> 0
        UNION ALL
        SELECT p.typbasetype WHERE p.typbasetype <> 0
        UNION ALL
        SELECT a.atttypid FROM pg_attribute a
        WHERE p.typtype = 'c' AND a.attrelid = p.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    ) x(oid)
),
types AS (
    SELECT jsonb_object_agg(p.oid::text, jsonb_build_object(
               'typname', p.typname,
               'nspname', n.nspname,
               'typtype', p.typtype,
               'typcategory', p.typcategory,
               'typsubscript', p.typsubscript::regproc::text,
               'typelem', p.typelem::text,
               'elem_delim', (SELECT e.typdelim FROM pg_type e WHERE e.oid = p.typelem),
               'typbasetype', p.typbasetype::text,
               'has_send', p.typsend <> 0,
               'attrs', CASE WHEN p.typtype = 'c' THEN (
                   SELECT jsonb_agg(jsonb_build_object('name', a.attname, 'type', a.atttypid::text)
                                    ORDER BY a.attnum)
                   FROM pg_attribute a
                   WHERE a.attrelid = p.typrelid AND a.attnum > 0 AND NOT a.attisdropped) END)) AS doc
    FROM type_closure tc
    JOIN pg_type p ON p.oid = tc.oid
    JOIN pg_namespace n ON n.oid = p.typnamespace
),
rowsets(table_id, rows) AS (
    :rows_sql
),
tables AS (
    SELECT jsonb_agg(jsonb_build_object(
               'table_id', t.table_id,
               'relid', CASE WHEN t.present THEN t.relid::regclass::text END,
               'label', t.label,
               'key_columns', to_jsonb(t.key_columns::text[]),
               'exclude_columns', to_jsonb(coalesce(t.exclude_columns::text[], '{}')),
               'writeback', t.writeback,
               'active', t.active,
               'present', t.present,
               'rows_exported', rs.table_id IS NOT NULL,
               'columns', coalesce((
                   SELECT jsonb_agg(jsonb_build_object('name', a.attname, 'type', a.atttypid::text,
                                                       'attnum', a.attnum)
                                    ORDER BY a.attnum)
                   FROM pg_attribute a
                   WHERE a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::jsonb),
               'rows', rs.rows)
           ORDER BY t.table_id) AS doc
    FROM tracked t
    LEFT JOIN rowsets rs ON rs.table_id = t.table_id
),
latest AS (
    SELECT DISTINCT ON (table_id, record_key) version_id, record_key
    FROM chainstore.versions
    ORDER BY table_id, record_key, version DESC
),
versions AS (
    SELECT jsonb_agg(jsonb_build_object(
               'version_id', v.version_id::text,
               'table_id', v.table_id,
               'record_key', encode(v.record_key, 'hex'),
               'version', v.version,
               'op', v.op::text,
               'record_hash', encode(v.record_hash, 'hex'),
               'prev_hash', encode(v.prev_hash, 'hex'),
               'chain_hash', encode(v.chain_hash, 'hex'),
               'salt', encode(v.salt, 'hex'),
               'leaf_input', encode(v.leaf_input, 'hex'),
               'leaf', encode(v.leaf, 'hex'),
               'captured_at', v.captured_at::text,
               -- decoded key (C's record_pk), only for messages
               'record_pk', CASE WHEN l.version_id IS NOT NULL THEN chainstore.record_pk(v.record_key) END)
           ORDER BY v.table_id, v.record_key, v.version) AS doc
    FROM chainstore.versions v
    LEFT JOIN latest l ON l.version_id = v.version_id
),
batches AS (
    SELECT jsonb_agg(jsonb_build_object(
               'batch_id', b.batch_id::text,
               'prev_batch_hash', encode(b.prev_batch_hash, 'hex'),
               'root', encode(b.root, 'hex'),
               'record_count', b.record_count::text,
               'sealed_at', b.sealed_at::text,
               'sealed_at_us', (extract(epoch FROM b.sealed_at) * 1000000)::bigint::text,
               'batch_hash', encode(b.batch_hash, 'hex'))
           ORDER BY b.batch_id) AS doc
    FROM chainstore.batches b
),
proofs AS (
    SELECT jsonb_agg(jsonb_build_object(
               'version_id', p.version_id::text,
               'batch_id', p.batch_id::text,
               'leaf_index', p.leaf_index,
               'proof', encode(p.proof, 'hex'))
           ORDER BY p.batch_id, p.leaf_index, p.version_id) AS doc
    FROM chainstore.proofs p
),
outbox AS (
    SELECT jsonb_agg(o.version_id::text ORDER BY o.version_id) AS doc
    FROM chainstore.outbox o
)
SELECT jsonb_build_object(
    'format', 'chainstore-verifier-export-v1',
    'settings', jsonb_build_object(
        'server_version', current_setting('server_version'),
        'server_encoding', current_setting('server_encoding'),
        'client_encoding', current_setting('client_encoding'),
        'TimeZone', current_setting('TimeZone'),
        'DateStyle', current_setting('DateStyle'),
        'IntervalStyle', current_setting('IntervalStyle'),
        'extra_float_digits', current_setting('extra_float_digits'),
        'bytea_output', current_setting('bytea_output'),
        'exported_at', now()::text),
    'types', coalesce((SELECT doc FROM types), '{}'::jsonb),
    'tables', coalesce((SELECT doc FROM tables), '[]'::jsonb),
    'versions', coalesce((SELECT doc FROM versions), '[]'::jsonb),
    'batches', coalesce((SELECT doc FROM batches), '[]'::jsonb),
    'proofs', coalesce((SELECT doc FROM proofs), '[]'::jsonb),
    'outbox', coalesce((SELECT doc FROM outbox), '[]'::jsonb));

COMMIT;
