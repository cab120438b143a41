/* chainstore--0.1.0.sql: install script (never edit a released version; add an upgrade script) */

\echo Use "CREATE EXTENSION chainstore" to load this file. \quit

-- Roles are cluster-wide: create them once, keep them when the extension is dropped.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'chainstore_admin') THEN
        CREATE ROLE chainstore_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'chainstore_reader') THEN
        CREATE ROLE chainstore_reader NOLOGIN;
    END IF;
END
$roles$;

------------------------------------------------------------------------------
-- Tables. All are registered with pg_extension_config_dump so that pg_dump
-- keeps history, proofs and batches.  chainstore.versions and
-- chainstore.outbox are written by the C trigger directly (src/capture.c);
-- their column order is part of that code.
------------------------------------------------------------------------------

CREATE SEQUENCE chainstore.tracked_table_id_seq AS integer;

CREATE TABLE chainstore.tracked (
    table_id        integer PRIMARY KEY DEFAULT nextval('chainstore.tracked_table_id_seq'),
    relid           regclass UNIQUE,            -- NULL once the table is dropped
    label           text NOT NULL UNIQUE,       -- fixed at first track(); part of every encoding
    key_columns     name[] NOT NULL,
    exclude_columns name[] NOT NULL DEFAULT '{}',
    writeback       jsonb NOT NULL DEFAULT '{}',
    tracked_at      timestamptz NOT NULL DEFAULT now(),
    active          boolean NOT NULL DEFAULT true
);
ALTER SEQUENCE chainstore.tracked_table_id_seq OWNED BY chainstore.tracked.table_id;

CREATE SEQUENCE chainstore.versions_version_id_seq AS bigint;

CREATE TABLE chainstore.versions (
    version_id  bigint PRIMARY KEY DEFAULT nextval('chainstore.versions_version_id_seq'),
    table_id    integer NOT NULL,
    record_key  bytea NOT NULL,       -- canonical encoding of the primary key
    version     integer NOT NULL,     -- 1, 2, ... per record
    op          "char" NOT NULL,      -- I, U or D
    record_hash bytea NOT NULL,       -- SHA256(encoding)
    prev_hash   bytea NOT NULL,       -- H_{n-1}
    chain_hash  bytea NOT NULL,       -- H_n = SHA256(H_{n-1} || encoding)
    salt        bytea,                -- NULL after chainstore.forget()
    leaf_input  bytea NOT NULL,       -- SHA256(salt || H_n)
    leaf        bytea NOT NULL,       -- keccak256(keccak256(leaf_input))
    captured_at timestamptz NOT NULL,
    txid        xid8 NOT NULL
);
ALTER SEQUENCE chainstore.versions_version_id_seq OWNED BY chainstore.versions.version_id;
CREATE UNIQUE INDEX versions_record_key ON chainstore.versions (table_id, record_key, version);

-- versions not yet in a batch
CREATE TABLE chainstore.outbox (
    version_id bigint PRIMARY KEY
);

CREATE TABLE chainstore.batches (
    batch_id          bigint PRIMARY KEY,
    prev_batch_hash   bytea NOT NULL,
    root              bytea NOT NULL,
    record_count      integer NOT NULL,
    sealed_at         timestamptz NOT NULL,
    batch_hash        bytea NOT NULL,
    system_identifier bigint NOT NULL,    -- where it was sealed, for reconciliation
    timeline          integer NOT NULL,
    seal_lsn          pg_lsn NOT NULL
);

CREATE TABLE chainstore.proofs (
    version_id bigint PRIMARY KEY,
    batch_id   bigint NOT NULL REFERENCES chainstore.batches,
    leaf_index integer NOT NULL,          -- position among the batch's sorted leaves
    proof      bytea NOT NULL             -- sibling hashes, 32 bytes each, leaf to root
);
CREATE INDEX proofs_batch_id ON chainstore.proofs (batch_id);

-- the end of the batch chain; its row lock orders concurrent sealers
CREATE TABLE chainstore.batch_head (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_batch_id   bigint NOT NULL,
    last_batch_hash bytea NOT NULL
);

SELECT pg_catalog.pg_extension_config_dump('chainstore.tracked', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.tracked_table_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.versions', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.versions_version_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.batches', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.proofs', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.batch_head', '');

------------------------------------------------------------------------------
-- Hash and Merkle helpers (C)
------------------------------------------------------------------------------

CREATE FUNCTION chainstore.sha256(data bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'chainstore_sha256'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION chainstore.keccak256(data bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'chainstore_keccak256'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION chainstore.merkle_leaf(leaf_input bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'chainstore_merkle_leaf'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION chainstore.merkle_root(leaves bytea[]) RETURNS bytea
    AS 'MODULE_PATHNAME', 'chainstore_merkle_root'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION chainstore.merkle_proof(leaves bytea[], leaf bytea) RETURNS bytea[]
    AS 'MODULE_PATHNAME', 'chainstore_merkle_proof'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION chainstore.verify_proof(leaf bytea, proof bytea[], root bytea) RETURNS boolean
    AS 'MODULE_PATHNAME', 'chainstore_verify_proof'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION chainstore.batch_hash(batch_id bigint, prev_batch_hash bytea, root bytea,
                                      record_count bigint, sealed_at timestamptz) RETURNS bytea
    AS 'MODULE_PATHNAME', 'chainstore_batch_hash'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- a stored proof as the manifest shows it: a JSON array of "0x…" strings
CREATE FUNCTION chainstore.proof_json(proof bytea) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'chainstore_proof_json'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- split a stored proof (concatenated 32-byte nodes) into an array
CREATE FUNCTION chainstore.proof_nodes(proof bytea) RETURNS bytea[]
    LANGUAGE sql STRICT IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN ARRAY(SELECT substring(proof FROM i * 32 + 1 FOR 32)
                   FROM generate_series(0, length(proof) / 32 - 1) AS i
                  ORDER BY i);

------------------------------------------------------------------------------
-- Capture (C)
------------------------------------------------------------------------------

CREATE FUNCTION chainstore.capture() RETURNS trigger
    AS 'MODULE_PATHNAME', 'chainstore_capture'
    LANGUAGE C;

CREATE FUNCTION chainstore.refuse_truncate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'chainstore_refuse_truncate'
    LANGUAGE C;

CREATE FUNCTION chainstore._check_columns(tbl regclass, exclude_columns text[]) RETURNS void
    AS 'MODULE_PATHNAME', 'chainstore_check_columns'
    LANGUAGE C;

CREATE FUNCTION chainstore._backfill(tbl regclass) RETURNS bigint
    AS 'MODULE_PATHNAME', 'chainstore_backfill'
    LANGUAGE C STRICT;

CREATE FUNCTION chainstore._invalidate(tbl regclass) RETURNS void
    AS 'MODULE_PATHNAME', 'chainstore_invalidate'
    LANGUAGE C STRICT;

CREATE FUNCTION chainstore._row_digest(tbl regclass, r record,
                                       OUT record_key bytea, OUT encoding bytea, OUT record_hash bytea)
    AS 'MODULE_PATHNAME', 'chainstore_row_digest'
    LANGUAGE C STRICT STABLE;

CREATE FUNCTION chainstore._tombstone(tbl regclass, pk jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'chainstore_tombstone'
    LANGUAGE C STRICT STABLE;

CREATE FUNCTION chainstore.record_key(tbl regclass, pk jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'chainstore_record_key'
    LANGUAGE C STRICT STABLE;

CREATE FUNCTION chainstore.record_pk(record_key bytea) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'chainstore_record_pk'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION chainstore.canonical(tbl regclass, pk jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'chainstore_canonical'
    LANGUAGE C STRICT STABLE;

CREATE FUNCTION chainstore.canonical_value(value anyelement) RETURNS bytea
    AS 'MODULE_PATHNAME', 'chainstore_canonical_value'
    LANGUAGE C STABLE;

CREATE FUNCTION chainstore.seal_batch(max_records integer DEFAULT 10000) RETURNS bigint
    AS 'MODULE_PATHNAME', 'chainstore_seal_batch'
    LANGUAGE C STRICT VOLATILE;

------------------------------------------------------------------------------
-- Tracking
------------------------------------------------------------------------------

CREATE FUNCTION chainstore.track(tbl regclass,
                                 exclude_columns text[] DEFAULT '{}',
                                 backfill boolean DEFAULT false,
                                 writeback jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_exclude text[];
    v_keys    name[];
    v_label   text;
    v_row     chainstore.tracked%ROWTYPE;
    v_written bigint := 0;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    exclude_columns := coalesce(exclude_columns, '{}');
    writeback := coalesce(writeback, '{}');
    backfill := coalesce(backfill, false);

    IF jsonb_typeof(writeback) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_each(writeback) e WHERE jsonb_typeof(e.value) <> 'string') THEN
        RAISE EXCEPTION 'writeback must map attestation fields to column names, e.g. {"ipfs_cid": "cid_column"}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- write-back targets change after capture, so they are never hashed
    SELECT array_agg(DISTINCT c ORDER BY c) INTO v_exclude
      FROM (SELECT unnest(exclude_columns) AS c
            UNION SELECT value FROM jsonb_each_text(writeback)) s;
    v_exclude := coalesce(v_exclude, '{}');

    PERFORM chainstore._check_columns(tbl, v_exclude);

    IF EXISTS (SELECT 1 FROM chainstore.tracked WHERE relid = tbl AND active) THEN
        RAISE EXCEPTION 'table % is already tracked', tbl
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Call chainstore.untrack() first to change its settings.';
    END IF;

    SELECT array_agg(a.attname ORDER BY a.attname) INTO v_keys
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = tbl AND i.indisprimary;
    SELECT format('%I.%I', n.nspname, c.relname) INTO v_label
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;

    -- re-tracking keeps the table's label and history
    SELECT * INTO v_row FROM chainstore.tracked WHERE relid = tbl;
    IF NOT FOUND THEN
        -- a dropped table of the same name: adopt its label and history
        SELECT * INTO v_row FROM chainstore.tracked WHERE label = v_label AND relid IS NULL;
    END IF;
    IF v_row.table_id IS NOT NULL THEN
        UPDATE chainstore.tracked
           SET relid = tbl, key_columns = v_keys, exclude_columns = v_exclude::name[],
               writeback = track.writeback, active = true, tracked_at = now()
         WHERE table_id = v_row.table_id;
    ELSE
        IF EXISTS (SELECT 1 FROM chainstore.tracked WHERE label = v_label) THEN
            RAISE EXCEPTION 'label % is already used by another tracked table', v_label
                USING ERRCODE = 'duplicate_object';
        END IF;
        INSERT INTO chainstore.tracked (relid, label, key_columns, exclude_columns, writeback)
        VALUES (tbl, v_label, v_keys, v_exclude::name[], track.writeback);
    END IF;

    EXECUTE format('CREATE TRIGGER chainstore_capture AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION chainstore.capture()', tbl);
    EXECUTE format('CREATE TRIGGER chainstore_no_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION chainstore.refuse_truncate()', tbl);
    PERFORM chainstore._invalidate(tbl);

    IF backfill THEN
        v_written := chainstore._backfill(tbl);
    END IF;
    RETURN v_written;
END
$$;

CREATE FUNCTION chainstore.untrack(tbl regclass) RETURNS void
LANGUAGE plpgsql STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM chainstore.tracked WHERE relid = tbl AND active) THEN
        RAISE EXCEPTION 'table % is not tracked', tbl USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS chainstore_capture ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS chainstore_no_truncate ON %s', tbl);
    UPDATE chainstore.tracked SET active = false WHERE relid = tbl;
    PERFORM chainstore._invalidate(tbl);
END
$$;

-- internal: table_id of a tracked (or formerly tracked) table, or a clear error
CREATE FUNCTION chainstore._table_id(tbl regclass) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id integer;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT table_id INTO v_id FROM chainstore.tracked WHERE relid = tbl;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'table % is not tracked by chainstore', tbl
            USING ERRCODE = 'undefined_object', HINT = 'Use chainstore.track() to track it.';
    END IF;
    RETURN v_id;
END
$$;

-- crypto-shredding: delete the salts of every version of one record
CREATE FUNCTION chainstore.forget(tbl regclass, pk jsonb) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id  integer := chainstore._table_id(tbl);
    v_key bytea;
    v_n   integer;
BEGIN
    IF pk IS NULL THEN
        RAISE EXCEPTION 'pk must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_key := chainstore.record_key(tbl, pk);
    IF NOT EXISTS (SELECT 1 FROM chainstore.versions WHERE table_id = v_id AND record_key = v_key) THEN
        RAISE EXCEPTION 'no recorded versions for % in table %', pk, tbl USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE chainstore.versions SET salt = NULL
     WHERE table_id = v_id AND record_key = v_key AND salt IS NOT NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- keep chainstore.tracked consistent when a tracked table is dropped
CREATE FUNCTION chainstore._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE chainstore.tracked t
       SET relid = NULL, active = false
      FROM pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
       AND d.objid = t.relid::oid;
END
$$;

CREATE EVENT TRIGGER chainstore_on_sql_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION chainstore._on_sql_drop();

------------------------------------------------------------------------------
-- Verification
------------------------------------------------------------------------------

CREATE FUNCTION chainstore.verify_batch(batch_id bigint, OUT ok boolean, OUT detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b        chainstore.batches%ROWTYPE;
    v_prev   bytea;
    v_root   bytea;
    v_count  bigint;
    v_bad    bigint;
BEGIN
    IF verify_batch.batch_id IS NULL THEN
        RAISE EXCEPTION 'batch_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO b FROM chainstore.batches x WHERE x.batch_id = verify_batch.batch_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'batch % does not exist', verify_batch.batch_id USING ERRCODE = 'no_data_found';
    END IF;

    SELECT chainstore.merkle_root(array_agg(v.leaf)), count(*),
           count(*) FILTER (WHERE NOT chainstore.verify_proof(v.leaf, chainstore.proof_nodes(p.proof), b.root))
      INTO v_root, v_count, v_bad
      FROM chainstore.proofs p JOIN chainstore.versions v USING (version_id)
     WHERE p.batch_id = b.batch_id;

    SELECT x.batch_hash INTO v_prev FROM chainstore.batches x WHERE x.batch_id = b.batch_id - 1;
    v_prev := coalesce(v_prev, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);

    ok := false;
    IF v_count <> b.record_count THEN
        detail := format('batch holds %s versions, %s recorded', v_count, b.record_count);
    ELSIF v_root IS DISTINCT FROM b.root THEN
        detail := format('root recomputed from the stored leaves is %s, stored root is %s', v_root, b.root);
    ELSIF v_bad > 0 THEN
        detail := format('%s stored proofs do not lead to the root', v_bad);
    ELSIF b.prev_batch_hash <> v_prev THEN
        detail := 'previous batch hash does not match the previous batch';
    ELSIF chainstore.batch_hash(b.batch_id, b.prev_batch_hash, b.root, b.record_count, b.sealed_at) <> b.batch_hash THEN
        detail := 'batch hash does not match its fields';
    ELSE
        ok := true;
        detail := format('root, %s proofs and batch hash verified', v_count);
    END IF;
END
$$;

CREATE FUNCTION chainstore.verify_row(tbl regclass, pk jsonb,
                                      OUT status text, OUT detail text,
                                      OUT version integer, OUT batch_id bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id     integer := chainstore._table_id(tbl);
    v_key    bytea;
    v_enc    bytea;
    v_latest chainstore.versions%ROWTYPE;
    v        record;
    v_prev   bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    v_expect integer := 1;
    v_root   bytea;
    v_proof  bytea;
    v_forgot boolean := false;
BEGIN
    IF pk IS NULL THEN
        RAISE EXCEPTION 'pk must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_key := chainstore.record_key(tbl, pk);
    v_enc := chainstore.canonical(tbl, pk);

    SELECT * INTO v_latest FROM chainstore.versions x
     WHERE x.table_id = v_id AND x.record_key = v_key ORDER BY x.version DESC LIMIT 1;
    IF NOT FOUND THEN
        IF v_enc IS NULL THEN
            RAISE EXCEPTION 'no row and no recorded version for % in table %', pk, tbl
                USING ERRCODE = 'no_data_found';
        END IF;
        status := 'mismatch';
        detail := 'row exists but no version of it was captured (inserted outside capture)';
        RETURN;
    END IF;
    version := v_latest.version;

    -- the chain, version by version
    FOR v IN SELECT x.* FROM chainstore.versions x
              WHERE x.table_id = v_id AND x.record_key = v_key ORDER BY x.version
    LOOP
        IF v.version <> v_expect OR v.prev_hash <> v_prev THEN
            status := 'mismatch';
            detail := format('hash chain broken at version %s', v.version);
            RETURN;
        END IF;
        IF v.salt IS NULL THEN
            v_forgot := true;
        ELSIF v.leaf_input <> chainstore.sha256(v.salt || v.chain_hash)
              OR v.leaf <> chainstore.merkle_leaf(v.leaf_input) THEN
            status := 'mismatch';
            detail := format('leaf of version %s does not match its chain hash and salt', v.version);
            RETURN;
        END IF;
        v_prev := v.chain_hash;
        v_expect := v.version + 1;
    END LOOP;

    -- the live row against the latest version
    IF v_latest.op = 'D' THEN
        IF v_enc IS NOT NULL THEN
            status := 'mismatch';
            detail := 'row exists but its latest version is a deletion (inserted outside capture)';
            RETURN;
        END IF;
        v_enc := chainstore._tombstone(tbl, pk);
    ELSIF v_enc IS NULL THEN
        status := 'mismatch';
        detail := 'row is missing but its latest version is not a deletion (deleted outside capture)';
        RETURN;
    END IF;
    IF chainstore.sha256(v_enc) <> v_latest.record_hash THEN
        status := 'mismatch';
        detail := 'row does not match its latest version (changed outside capture)';
        RETURN;
    END IF;
    IF chainstore.sha256(v_latest.prev_hash || v_enc) <> v_latest.chain_hash THEN
        status := 'mismatch';
        detail := 'chain hash of the latest version does not match the row';
        RETURN;
    END IF;

    -- the Merkle proof and the batch
    SELECT p.batch_id, p.proof, b.root INTO batch_id, v_proof, v_root
      FROM chainstore.proofs p JOIN chainstore.batches b USING (batch_id)
     WHERE p.version_id = v_latest.version_id;
    IF batch_id IS NOT NULL THEN
        IF NOT chainstore.verify_proof(v_latest.leaf, chainstore.proof_nodes(v_proof), v_root) THEN
            status := 'mismatch';
            detail := format('proof does not lead to the root of batch %s', batch_id);
            RETURN;
        END IF;
        IF NOT (chainstore.verify_batch(batch_id)).ok THEN
            status := 'mismatch';
            detail := format('batch %s does not verify: %s', batch_id, (chainstore.verify_batch(batch_id)).detail);
            RETURN;
        END IF;
    END IF;

    IF v_forgot THEN
        status := 'forgotten';
        detail := 'salts deleted by chainstore.forget(); hashes, chain and proofs still verify';
    ELSIF batch_id IS NULL THEN
        status := 'pending';
        detail := format('row hash and chain of %s version(s) verified; not sealed yet', version);
    ELSE
        status := 'sealed';
        detail := format('row hash, chain of %s version(s), leaf and proof in batch %s verified',
                         version, batch_id);
    END IF;
END
$$;

CREATE FUNCTION chainstore.verify_table(tbl regclass)
RETURNS TABLE (problem text, pk jsonb, version integer, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id integer := chainstore._table_id(tbl);
BEGIN
    -- live rows against the latest versions
    RETURN QUERY EXECUTE format($q$
        WITH cur AS MATERIALIZED (
            SELECT d.record_key, d.encoding, d.record_hash
              FROM ONLY %s t, LATERAL chainstore._row_digest(%L::regclass, t.*) d),
        lat AS (
            SELECT DISTINCT ON (v.record_key) v.*
              FROM chainstore.versions v WHERE v.table_id = $1
             ORDER BY v.record_key, v.version DESC)
        SELECT CASE
                 WHEN lat.version_id IS NULL OR lat.op = 'D' THEN 'inserted outside capture'
                 WHEN cur.record_key IS NULL THEN 'deleted outside capture'
                 WHEN cur.record_hash <> lat.record_hash THEN 'changed outside capture'
                 ELSE 'chain hash mismatch'
               END,
               chainstore.record_pk(coalesce(cur.record_key, lat.record_key)),
               lat.version,
               CASE
                 WHEN lat.version_id IS NULL THEN 'row has no captured version'
                 WHEN lat.op = 'D' THEN format('row exists but version %%s is a deletion', lat.version)
                 WHEN cur.record_key IS NULL THEN format('version %%s says the row exists', lat.version)
                 WHEN cur.record_hash <> lat.record_hash THEN format('row hash %%s, version %%s recorded %%s', cur.record_hash, lat.version, lat.record_hash)
                 ELSE 'SHA256(prev_hash || encoding) differs from the stored chain hash'
               END
          FROM cur FULL JOIN lat ON cur.record_key = lat.record_key
         WHERE lat.version_id IS NULL
            OR (cur.record_key IS NULL AND lat.op <> 'D')
            OR (cur.record_key IS NOT NULL AND lat.op = 'D')
            OR cur.record_hash <> lat.record_hash
            OR chainstore.sha256(lat.prev_hash || cur.encoding) <> lat.chain_hash
         ORDER BY 2$q$, tbl, tbl) USING v_id;

    -- links between versions
    RETURN QUERY
        SELECT 'broken chain', chainstore.record_pk(s.record_key), s.version,
               format('version %s does not link to version %s', s.version, s.prev_version)
          FROM (SELECT v.record_key, v.version, v.prev_hash,
                       lag(v.chain_hash) OVER w AS prev_chain,
                       coalesce(lag(v.version) OVER w, 0) AS prev_version
                  FROM chainstore.versions v WHERE v.table_id = v_id
                WINDOW w AS (PARTITION BY v.record_key ORDER BY v.version)) s
         WHERE s.version <> s.prev_version + 1
            OR s.prev_hash <> coalesce(s.prev_chain,
                   '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
         ORDER BY 2, 3;

    -- salted leaves
    RETURN QUERY
        SELECT 'leaf mismatch', chainstore.record_pk(v.record_key), v.version,
               'leaf is not derived from the chain hash and salt'
          FROM chainstore.versions v
         WHERE v.table_id = v_id AND v.salt IS NOT NULL
           AND (v.leaf_input <> chainstore.sha256(v.salt || v.chain_hash)
                OR v.leaf <> chainstore.merkle_leaf(v.leaf_input))
         ORDER BY 2, 3;

    -- proofs against batch roots
    RETURN QUERY
        SELECT 'proof mismatch', chainstore.record_pk(v.record_key), v.version,
               format('proof does not lead to the root of batch %s', p.batch_id)
          FROM chainstore.versions v
          JOIN chainstore.proofs p USING (version_id)
          JOIN chainstore.batches b USING (batch_id)
         WHERE v.table_id = v_id
           AND NOT chainstore.verify_proof(v.leaf, chainstore.proof_nodes(p.proof), b.root)
         ORDER BY 2, 3;
END
$$;

-- one digest of all current record hashes; equal wherever the table's rows are equal
CREATE FUNCTION chainstore.table_fingerprint(tbl regclass) RETURNS bytea
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_digest bytea;
BEGIN
    PERFORM chainstore._table_id(tbl);
    EXECUTE format($q$
        SELECT chainstore.sha256(coalesce(
                   string_agg(chainstore.sha256(d.record_key) || d.record_hash, ''::bytea
                              ORDER BY d.record_key), ''::bytea))
          FROM ONLY %s t, LATERAL chainstore._row_digest(%L::regclass, t.*) d$q$, tbl, tbl)
      INTO v_digest;
    RETURN v_digest;
END
$$;

CREATE FUNCTION chainstore.record_history(tbl regclass, pk jsonb)
RETURNS TABLE (version integer, op text, captured_at timestamptz, record_hash bytea,
               prev_hash bytea, chain_hash bytea, leaf bytea, forgotten boolean,
               batch_id bigint, root bytea, proof bytea[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id  integer := chainstore._table_id(tbl);
    v_key bytea;
BEGIN
    IF pk IS NULL THEN
        RAISE EXCEPTION 'pk must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_key := chainstore.record_key(tbl, pk);
    RETURN QUERY
        SELECT v.version,
               CASE v.op WHEN 'I' THEN 'insert' WHEN 'U' THEN 'update' ELSE 'delete' END,
               v.captured_at, v.record_hash, v.prev_hash, v.chain_hash, v.leaf,
               v.salt IS NULL, p.batch_id, b.root, chainstore.proof_nodes(p.proof)
          FROM chainstore.versions v
          LEFT JOIN chainstore.proofs p USING (version_id)
          LEFT JOIN chainstore.batches b USING (batch_id)
         WHERE v.table_id = v_id AND v.record_key = v_key
         ORDER BY v.version;
END
$$;

------------------------------------------------------------------------------
-- Views for analysts
------------------------------------------------------------------------------

CREATE VIEW chainstore.tracked_tables AS
SELECT t.table_id, t.label, t.relid, t.key_columns, t.exclude_columns, t.writeback,
       t.active, t.tracked_at,
       (SELECT count(*) FROM chainstore.versions v WHERE v.table_id = t.table_id) AS versions,
       (SELECT count(*) FROM chainstore.outbox o JOIN chainstore.versions v USING (version_id)
         WHERE v.table_id = t.table_id) AS pending_versions
  FROM chainstore.tracked t;

CREATE VIEW chainstore.outbox_stats AS
SELECT t.label, t.relid, count(*) AS depth,
       min(v.captured_at) AS oldest_captured_at,
       now() - min(v.captured_at) AS oldest_age
  FROM chainstore.outbox o
  JOIN chainstore.versions v USING (version_id)
  JOIN chainstore.tracked t USING (table_id)
 GROUP BY t.label, t.relid;

------------------------------------------------------------------------------
-- Delivery: sinks, the per batch x sink state machine, attempts and
-- verifications.  The background worker (src/worker.c) drives it.
------------------------------------------------------------------------------

CREATE TABLE chainstore.sinks (
    sink_id    serial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    kind       text NOT NULL CHECK (kind IN ('ipfs', 'evm', 'hedera')),
    endpoints  text[] NOT NULL CHECK (cardinality(endpoints) > 0),   -- failover order
    options    jsonb NOT NULL DEFAULT '{}',
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- one row per batch and sink:
--   pending -> in_flight -> delivered -> verified, or -> dead / mismatch
CREATE TABLE chainstore.deliveries (
    batch_id            bigint NOT NULL REFERENCES chainstore.batches,
    sink_id             integer NOT NULL REFERENCES chainstore.sinks ON DELETE CASCADE,
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'in_flight', 'delivered', 'verified', 'dead', 'mismatch')),
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    payload             bytea,              -- exactly what is sent, recorded before the first send
    payload_id          text,               -- what the payload must be known as (the CID for IPFS)
    attestation         jsonb,              -- what the sink returned (cid, tx hash, sequence number, ...)
    endpoint            text,               -- the endpoint that accepted it
    last_error          text,
    last_error_at       timestamptz,
    delivered_at        timestamptz,
    verified_at         timestamptz,
    delayed_verified_at timestamptz,
    writeback_pending   boolean NOT NULL DEFAULT false,   -- rows still to receive the attestation
    PRIMARY KEY (batch_id, sink_id)
);
CREATE INDEX deliveries_writeback ON chainstore.deliveries (batch_id) WHERE writeback_pending;
-- manifests are megabytes and are read back byte for byte: store, do not compress
ALTER TABLE chainstore.deliveries ALTER COLUMN payload SET STORAGE EXTERNAL;
CREATE INDEX deliveries_due ON chainstore.deliveries (next_attempt_at)
    WHERE state IN ('pending', 'in_flight', 'delivered')
       OR (state = 'verified' AND delayed_verified_at IS NULL);

CREATE TABLE chainstore.attempts (
    attempt_id  bigserial PRIMARY KEY,
    batch_id    bigint NOT NULL,
    sink_id     integer NOT NULL,
    step        text NOT NULL,            -- submit, verify, verify_delayed
    endpoint    text NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    ok          boolean NOT NULL,
    http_status integer,
    error       text
);
CREATE INDEX attempts_endpoint_time ON chainstore.attempts (endpoint, started_at);

CREATE TABLE chainstore.verifications (
    verification_id bigserial PRIMARY KEY,
    batch_id        bigint NOT NULL,
    sink_id         integer NOT NULL,
    phase           text NOT NULL CHECK (phase IN ('immediate', 'delayed')),
    verified_at     timestamptz NOT NULL DEFAULT now(),
    endpoint        text,
    ok              boolean NOT NULL,
    detail          text
);
CREATE INDEX verifications_batch ON chainstore.verifications (batch_id, sink_id);

SELECT pg_catalog.pg_extension_config_dump('chainstore.sinks', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.sinks_sink_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.deliveries', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.attempts', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.attempts_attempt_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.verifications', '');
SELECT pg_catalog.pg_extension_config_dump('chainstore.verifications_verification_id_seq', '');

-- internal: endpoints must be plain http(s) URLs without credentials
CREATE FUNCTION chainstore._check_endpoints(endpoints text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text;
BEGIN
    IF endpoints IS NULL OR cardinality(endpoints) = 0 THEN
        RAISE EXCEPTION 'a sink needs at least one endpoint' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH e IN ARRAY endpoints LOOP
        IF e IS NULL OR e !~ '^https?://[^/@\s]+(/\S*)?$' THEN
            RAISE EXCEPTION 'endpoint % is not an http:// or https:// URL without credentials', coalesce(e, 'NULL')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Put tokens in a secret file (chainstore.secrets_dir), not in the URL.';
        END IF;
    END LOOP;
END
$$;

-- internal: only superusers point sinks at the network (no SSRF by admins)
CREATE FUNCTION chainstore._require_superuser(what text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'only a superuser can %', what
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Sink endpoints decide where the server connects to.';
    END IF;
END
$$;

CREATE FUNCTION chainstore.add_sink(name text, kind text, endpoints text[],
                                    options jsonb DEFAULT '{}', enabled boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id integer;
BEGIN
    PERFORM chainstore._require_superuser('add a sink');
    PERFORM chainstore._check_endpoints(endpoints);
    IF kind IS NULL OR kind NOT IN ('ipfs') THEN
        RAISE EXCEPTION 'unsupported sink kind %', coalesce(kind, 'NULL')
            USING ERRCODE = 'feature_not_supported', HINT = 'This version delivers to: ipfs.';
    END IF;
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM chainstore.sinks s WHERE s.name = add_sink.name) THEN
        RAISE EXCEPTION 'sink % already exists', add_sink.name USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO chainstore.sinks (name, kind, endpoints, options, enabled)
    VALUES (add_sink.name, add_sink.kind, add_sink.endpoints, add_sink.options, coalesce(add_sink.enabled, true))
    RETURNING sink_id INTO v_id;
    RETURN v_id;
END
$$;

CREATE FUNCTION chainstore.alter_sink(name text, endpoints text[] DEFAULT NULL,
                                      options jsonb DEFAULT NULL, enabled boolean DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM chainstore.sinks s WHERE s.name = alter_sink.name) THEN
        RAISE EXCEPTION 'sink % does not exist', alter_sink.name USING ERRCODE = 'undefined_object';
    END IF;
    IF endpoints IS NOT NULL OR options IS NOT NULL THEN
        PERFORM chainstore._require_superuser('change a sink''s endpoints or options');
    END IF;
    IF endpoints IS NOT NULL THEN
        PERFORM chainstore._check_endpoints(endpoints);
    END IF;
    IF options IS NOT NULL AND jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- separate statements: an administrator may only touch "enabled"
    IF endpoints IS NOT NULL OR options IS NOT NULL THEN
        UPDATE chainstore.sinks s
           SET endpoints = coalesce(alter_sink.endpoints, s.endpoints),
               options = coalesce(alter_sink.options, s.options)
         WHERE s.name = alter_sink.name;
    END IF;
    IF enabled IS NOT NULL THEN
        UPDATE chainstore.sinks s SET enabled = alter_sink.enabled WHERE s.name = alter_sink.name;
        PERFORM chainstore._wake_worker();
    END IF;
END
$$;

CREATE FUNCTION chainstore.drop_sink(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM chainstore._require_superuser('drop a sink');
    DELETE FROM chainstore.sinks s WHERE s.name = drop_sink.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sink % does not exist', drop_sink.name USING ERRCODE = 'undefined_object';
    END IF;
END
$$;

-- requeue a dead-lettered or mismatched delivery
CREATE FUNCTION chainstore.retry(batch_id bigint, sink text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE chainstore.deliveries d
       SET state = CASE WHEN d.attestation IS NULL THEN 'pending' ELSE 'delivered' END,
           attempts = 0, next_attempt_at = now(), last_error = NULL
      FROM chainstore.sinks s
     WHERE s.sink_id = d.sink_id AND s.name = retry.sink AND d.batch_id = retry.batch_id
       AND d.state IN ('dead', 'mismatch');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no dead-lettered or mismatched delivery of batch % to sink %', retry.batch_id, retry.sink
            USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM chainstore._wake_worker();
END
$$;

CREATE FUNCTION chainstore._wake_worker() RETURNS void
    AS 'MODULE_PATHNAME', 'chainstore_wake_worker'
    LANGUAGE C;

CREATE FUNCTION chainstore.circuit(endpoint text, mode text) RETURNS void
    AS 'MODULE_PATHNAME', 'chainstore_circuit'
    LANGUAGE C STRICT;

CREATE FUNCTION chainstore.circuit_states(
        OUT endpoint text, OUT state text, OUT mode text, OUT requests integer,
        OUT failures integer, OUT opened_at timestamptz, OUT last_success timestamptz,
        OUT last_failure timestamptz, OUT last_error text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'chainstore_circuit_states'
    LANGUAGE C STRICT;

-- the manifest published for a batch (docs/manifest.md)
CREATE FUNCTION chainstore.batch_manifest(batch_id bigint, include_record_hash boolean DEFAULT false)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT jsonb_build_object(
               'format', 'chainstore-manifest-v1',
               'batch_id', b.batch_id,
               'prev_batch_hash', '0x' || encode(b.prev_batch_hash, 'hex'),
               'batch_hash', '0x' || encode(b.batch_hash, 'hex'),
               'root', '0x' || encode(b.root, 'hex'),
               'record_count', b.record_count,
               'sealed_at', to_char(b.sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'system_identifier', b.system_identifier::text,
               'records', (SELECT coalesce(jsonb_agg(
                               jsonb_build_object(
                                   'table', t.label,
                                   'pk', chainstore.record_pk(v.record_key),
                                   'version', v.version,
                                   'leaf', '0x' || encode(v.leaf, 'hex'),
                                   'leaf_index', p.leaf_index,
                                   'proof', chainstore.proof_json(p.proof))
                               || CASE WHEN include_record_hash
                                       THEN jsonb_build_object('record_hash', '0x' || encode(v.record_hash, 'hex'))
                                       ELSE '{}'::jsonb END
                               ORDER BY p.leaf_index), '[]'::jsonb)
                             FROM chainstore.proofs p
                             JOIN chainstore.versions v USING (version_id)
                             JOIN chainstore.tracked t USING (table_id)
                            WHERE p.batch_id = b.batch_id))
      FROM chainstore.batches b
     WHERE b.batch_id = batch_manifest.batch_id;
END;

-- Write attestation values into the mapped columns of the rows a batch
-- anchored, only where the anchored version is still the row's current
-- content.  Rows are locked with SKIP LOCKED: the worker never waits for an
-- application transaction, so it can never deadlock with one.  Returns how
-- many rows still wait (locked right now); the worker tries them again later.
CREATE FUNCTION chainstore._writeback(batch_id bigint, attestation jsonb) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t          record;
    m          record;
    v_set      text;
    v_differs  text;
    v_join     text;
    v_cands    text;
    v_n        bigint;
    v_updated  bigint;
    v_cand_n   bigint;
    v_pending  bigint := 0;
BEGIN
    FOR t IN SELECT DISTINCT tr.table_id, tr.relid, tr.key_columns, tr.writeback
               FROM chainstore.proofs p
               JOIN chainstore.versions v USING (version_id)
               JOIN chainstore.tracked tr USING (table_id)
              WHERE p.batch_id = _writeback.batch_id AND tr.active AND tr.relid IS NOT NULL
                AND tr.writeback ?| ARRAY(SELECT jsonb_object_keys(attestation))
    LOOP
        v_set := NULL;
        v_differs := NULL;
        FOR m IN SELECT e.key, e.value FROM jsonb_each_text(t.writeback) e WHERE attestation ? e.key LOOP
            v_set := concat_ws(', ', v_set, format('%I = %L', m.value, attestation ->> m.key));
            v_differs := concat_ws(' OR ', v_differs,
                                   format('u.%I::text IS DISTINCT FROM %L', m.value, attestation ->> m.key));
        END LOOP;
        SELECT string_agg(format('u.%1$I = k.%1$I', c), ' AND ') INTO v_join FROM unnest(t.key_columns) c;
        -- the batch's versions that are the latest of their record, as rows of the table
        v_cands := format($q$
            SELECT (jsonb_populate_record(NULL::%1$s, chainstore.record_pk(v.record_key))).*, v.record_hash AS cs_hash
              FROM chainstore.proofs p
              JOIN chainstore.versions v USING (version_id)
             WHERE p.batch_id = $1 AND v.table_id = $2 AND v.op <> 'D'
               AND v.version = (SELECT max(w.version) FROM chainstore.versions w
                                 WHERE w.table_id = v.table_id AND w.record_key = v.record_key)$q$, t.relid);
        EXECUTE format($q$
            WITH k AS (%1$s),
            locked AS (SELECT u.ctid AS row_ctid, k.cs_hash
                         FROM ONLY %2$s u JOIN k ON %3$s
                        WHERE %4$s
                          FOR UPDATE OF u SKIP LOCKED)
            UPDATE ONLY %2$s u SET %5$s
              FROM locked l
             WHERE u.ctid = l.row_ctid
               AND (chainstore._row_digest(%6$L::regclass, u.*)).record_hash = l.cs_hash$q$,
            v_cands, t.relid, v_join, v_differs, v_set, t.relid::oid::regclass)
        USING _writeback.batch_id, t.table_id;
        GET DIAGNOSTICS v_updated = ROW_COUNT;
        -- every candidate written: nothing is owed (the common case, no second pass)
        EXECUTE format('SELECT count(*) FROM (%s) c', v_cands) INTO v_cand_n
            USING _writeback.batch_id, t.table_id;
        CONTINUE WHEN v_updated = v_cand_n;
        -- what is still owed: rows that still hold the anchored content but not the value
        EXECUTE format($q$
            WITH k AS (%1$s)
            SELECT count(*) FROM ONLY %2$s u JOIN k ON %3$s
             WHERE (%4$s)
               AND (chainstore._row_digest(%5$L::regclass, u.*)).record_hash = k.cs_hash$q$,
            v_cands, t.relid, v_join, v_differs, t.relid::oid::regclass)
        INTO v_n USING _writeback.batch_id, t.table_id;
        v_pending := v_pending + v_n;
    END LOOP;
    RETURN v_pending;
END
$$;

CREATE VIEW chainstore.verification_status AS
SELECT t.label, t.relid, chainstore.record_pk(l.record_key) AS pk,
       l.version, l.op, l.captured_at, l.record_hash, l.chain_hash, l.leaf,
       p.batch_id, b.root, d.sinks, d.anchored, d.verified,
       CASE WHEN l.salt IS NULL THEN 'forgotten'
            WHEN p.batch_id IS NULL THEN 'pending'
            WHEN d.mismatched > 0 THEN 'mismatch'
            WHEN d.failed > 0 THEN 'failed'
            WHEN d.sinks > 0 AND d.verified = d.sinks THEN 'verified'
            WHEN d.anchored > 0 THEN 'anchored'
            ELSE 'sealed' END AS status
  FROM (SELECT DISTINCT ON (v.table_id, v.record_key) v.*
          FROM chainstore.versions v
         ORDER BY v.table_id, v.record_key, v.version DESC) l
  JOIN chainstore.tracked t USING (table_id)
  LEFT JOIN chainstore.proofs p USING (version_id)
  LEFT JOIN chainstore.batches b USING (batch_id)
  LEFT JOIN LATERAL (
        SELECT count(*) AS sinks,
               count(*) FILTER (WHERE x.state IN ('delivered', 'verified')) AS anchored,
               count(*) FILTER (WHERE x.state = 'verified') AS verified,
               count(*) FILTER (WHERE x.state = 'mismatch') AS mismatched,
               count(*) FILTER (WHERE x.state = 'dead') AS failed
          FROM chainstore.deliveries x WHERE x.batch_id = p.batch_id) d ON true;

-- Reconciliation: what each sink says the newest anchored batch is, compared
-- with the local batch chain.  A sink holding batches this database does not
-- have (restore from an old backup, point-in-time recovery, failover to a
-- lagging replica) is a fork: the worker stops delivering to that sink until
-- an administrator acknowledges it.
CREATE TABLE chainstore.reconciliation (
    sink_id          integer PRIMARY KEY REFERENCES chainstore.sinks ON DELETE CASCADE,
    checked_at       timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL CHECK (status IN ('ok', 'fork', 'unreachable')),
    sink_batch_id    bigint,
    sink_batch_hash  bytea,
    local_batch_id   bigint,
    local_batch_hash bytea,
    detail           text,
    acknowledged_at  timestamptz,
    acknowledged_by  name,
    acknowledged_batch_id   bigint,         -- the sink head that was accepted
    acknowledged_batch_hash bytea
);
SELECT pg_catalog.pg_extension_config_dump('chainstore.reconciliation', '');

CREATE FUNCTION chainstore.acknowledge_fork(sink text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE chainstore.reconciliation r
       SET acknowledged_at = now(), acknowledged_by = session_user,
           acknowledged_batch_id = r.sink_batch_id, acknowledged_batch_hash = r.sink_batch_hash
      FROM chainstore.sinks s
     WHERE s.sink_id = r.sink_id AND s.name = acknowledge_fork.sink AND r.status = 'fork';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sink % has no fork to acknowledge', acknowledge_fork.sink
            USING ERRCODE = 'no_data_found';
    END IF;
    RAISE LOG 'chainstore: fork on sink % acknowledged by %; this database''s chain will be anchored there from now on',
        acknowledge_fork.sink, session_user;
    PERFORM chainstore._wake_worker();
END
$$;

CREATE VIEW chainstore.reconciliation_report AS
SELECT s.name AS sink, s.kind, r.status,
       r.status = 'fork' AND r.acknowledged_at IS NULL AS blocking,
       r.checked_at, r.sink_batch_id, r.sink_batch_hash, r.local_batch_id, r.local_batch_hash,
       r.detail, r.acknowledged_at, r.acknowledged_by
  FROM chainstore.sinks s
  LEFT JOIN chainstore.reconciliation r USING (sink_id);

CREATE VIEW chainstore.delivery_queue AS
SELECT s.name AS sink, s.kind, d.state, count(*) AS batches,
       min(b.sealed_at) AS oldest_sealed_at, now() - min(b.sealed_at) AS oldest_age,
       min(d.next_attempt_at) AS next_attempt_at
  FROM chainstore.deliveries d
  JOIN chainstore.sinks s USING (sink_id)
  JOIN chainstore.batches b USING (batch_id)
 GROUP BY s.name, s.kind, d.state;

CREATE VIEW chainstore.sink_health AS
SELECT s.name AS sink, s.kind, e.endpoint, e.ord AS failover_order, s.enabled,
       coalesce(c.state, 'closed') AS circuit, coalesce(c.mode, 'auto') AS circuit_mode,
       a.requests_1h, a.failures_1h,
       CASE WHEN a.requests_1h > 0 THEN round(a.failures_1h::numeric / a.requests_1h, 3) END AS failure_rate_1h,
       a.latency_p50_ms, a.latency_p95_ms,
       a.last_success, c.last_error, c.last_failure
  FROM chainstore.sinks s
  CROSS JOIN LATERAL unnest(s.endpoints) WITH ORDINALITY AS e(endpoint, ord)
  LEFT JOIN chainstore.circuit_states() c ON c.endpoint = e.endpoint
  LEFT JOIN LATERAL (
        SELECT count(*) AS requests_1h, count(*) FILTER (WHERE NOT x.ok) AS failures_1h,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY x.duration_ms) AS latency_p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY x.duration_ms) AS latency_p95_ms,
               (SELECT max(y.started_at) FROM chainstore.attempts y WHERE y.endpoint = e.endpoint AND y.ok) AS last_success
          FROM chainstore.attempts x
         WHERE x.endpoint = e.endpoint AND x.started_at > now() - interval '1 hour') a ON true;

------------------------------------------------------------------------------
-- Privileges.  Application roles need none: the capture trigger writes
-- chainstore's tables without SQL-level permission checks.
------------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA chainstore FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainstore.sha256(bytea), chainstore.keccak256(bytea),
    chainstore.merkle_leaf(bytea), chainstore.merkle_root(bytea[]),
    chainstore.merkle_proof(bytea[], bytea), chainstore.verify_proof(bytea, bytea[], bytea),
    chainstore.batch_hash(bigint, bytea, bytea, bigint, timestamptz),
    chainstore.proof_nodes(bytea), chainstore.proof_json(bytea), chainstore.record_pk(bytea),
    chainstore.canonical_value(anyelement)
    TO PUBLIC;

GRANT USAGE ON SCHEMA chainstore TO chainstore_reader, chainstore_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA chainstore TO chainstore_reader, chainstore_admin;
GRANT EXECUTE ON FUNCTION
    chainstore._table_id(regclass), chainstore._row_digest(regclass, record),
    chainstore._tombstone(regclass, jsonb), chainstore.record_key(regclass, jsonb),
    chainstore.canonical(regclass, jsonb), chainstore.verify_row(regclass, jsonb),
    chainstore.verify_batch(bigint), chainstore.verify_table(regclass),
    chainstore.table_fingerprint(regclass), chainstore.record_history(regclass, jsonb),
    chainstore.circuit_states(), chainstore.batch_manifest(bigint, boolean)
    TO chainstore_reader, chainstore_admin;

-- administrators track tables (they must also own them) and seal batches
GRANT INSERT, UPDATE ON chainstore.tracked TO chainstore_admin;
GRANT USAGE ON SEQUENCE chainstore.tracked_table_id_seq TO chainstore_admin;
GRANT UPDATE (salt) ON chainstore.versions TO chainstore_admin;
GRANT UPDATE, DELETE ON chainstore.outbox TO chainstore_admin;
GRANT INSERT ON chainstore.batches, chainstore.proofs TO chainstore_admin;
GRANT INSERT, UPDATE ON chainstore.batch_head TO chainstore_admin;
GRANT INSERT ON chainstore.deliveries TO chainstore_admin;
GRANT UPDATE (enabled) ON chainstore.sinks TO chainstore_admin;
GRANT UPDATE (state, attempts, next_attempt_at, last_error) ON chainstore.deliveries TO chainstore_admin;
GRANT EXECUTE ON FUNCTION chainstore.add_sink(text, text, text[], jsonb, boolean),
    chainstore.alter_sink(text, text[], jsonb, boolean), chainstore.drop_sink(text),
    chainstore._require_superuser(text), chainstore._check_endpoints(text[]),
    chainstore.retry(bigint, text), chainstore._wake_worker(), chainstore.circuit(text, text),
    chainstore.acknowledge_fork(text)
    TO chainstore_admin;
GRANT UPDATE (acknowledged_at, acknowledged_by, acknowledged_batch_id, acknowledged_batch_hash)
    ON chainstore.reconciliation TO chainstore_admin;
GRANT EXECUTE ON FUNCTION
    chainstore.capture(), chainstore.refuse_truncate(),
    chainstore._check_columns(regclass, text[]), chainstore._backfill(regclass),
    chainstore._invalidate(regclass),
    chainstore.track(regclass, text[], boolean, jsonb), chainstore.untrack(regclass),
    chainstore.forget(regclass, jsonb), chainstore.seal_batch(integer)
    TO chainstore_admin;

------------------------------------------------------------------------------
-- IPFS CIDs (src/cid.c)
------------------------------------------------------------------------------

-- the CIDv1 Kubo gives these bytes with `ipfs add --cid-version=1` (defaults)
CREATE FUNCTION chainstore.ipfs_cid(data bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'chainstore_ipfs_cid'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- CIDv0 (base58btc "Qm...") or CIDv1 (base32 "b...") over a sha2-256 digest
CREATE FUNCTION chainstore.cid_is_valid(cid text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'chainstore_cid_is_valid'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- tests only: the same DAG with another chunk size and fan-out
CREATE FUNCTION chainstore._ipfs_cid_chunked(data bytea, chunk_size integer, max_links integer)
    RETURNS text
    AS 'MODULE_PATHNAME', 'chainstore_ipfs_cid_chunked'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

REVOKE ALL ON FUNCTION chainstore._ipfs_cid_chunked(bytea, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chainstore.ipfs_cid(bytea), chainstore.cid_is_valid(text) TO PUBLIC;
