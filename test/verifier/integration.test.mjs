// (d) End to end against a live PostgreSQL with chainstore installed:
// track tables holding every supported type, write, seal, export with
// export.sql, verify with verify-db.mjs; then tamper and expect a problem.
//
//   CHAINSTORE_TEST_PGURL='postgresql:///postgres?host=/tmp&port=54331&user=postgres' \
//     node --test test/verifier/
//
// The URL's role needs CREATEDB: the test works in its own scratch database
// (chainstore_verifier_<pid>), dropped afterwards unless CHAINSTORE_TEST_KEEP=1.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PGURL = process.env.CHAINSTORE_TEST_PGURL;
const EXPORT_SQL = fileURLToPath(new URL('./export.sql', import.meta.url));
const VERIFY = fileURLToPath(new URL('./verify-db.mjs', import.meta.url));

/** The same connection, pointed at another database. */
function withDatabase(conn, db) {
  if (/^postgres(ql)?:\/\//.test(conn)) {
    const u = new URL(conn);
    u.pathname = '/' + encodeURIComponent(db);
    u.searchParams.delete('dbname');
    return u.toString();
  }
  return `${conn} dbname=${db}`; // keyword/value form: the last dbname wins
}

/** Run SQL through psql; returns stdout, throws with psql's stderr on error. */
function psql(conn, sql, extraArgs = []) {
  const r = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', conn, ...extraArgs], {
    input: sql,
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`psql failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

function exportAndVerify(conn) {
  const json = execFileSync('psql', ['-X', '-d', conn, '-f', EXPORT_SQL], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const r = spawnSync(process.execPath, [VERIFY, '--export', '-'], { input: json, encoding: 'utf8', maxBuffer: 1 << 30 });
  return { status: r.status, out: r.stdout + r.stderr, doc: JSON.parse(json) };
}

const SETUP = String.raw`
CREATE EXTENSION citext;
CREATE EXTENSION chainstore;

CREATE TYPE vt_mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE vt_inner AS (a integer, b text);
CREATE TYPE vt_outer AS (x vt_inner, y numeric[], z text, w vt_mood);
CREATE DOMAIN vt_posint AS integer CHECK (VALUE > 0);

CREATE TABLE public.vt (
    id      bigint PRIMARY KEY,
    gone    text,                  -- dropped below: dropped columns never count
    b       boolean,
    i2      smallint,
    i4      integer,
    i8      bigint,
    n       numeric,
    n2      numeric(10,3),
    f4      real,
    f8      double precision,
    t       text,
    vc      varchar(20),
    bp      char(6),
    nm      name,
    ch      "char",
    by      bytea,
    tstz    timestamptz,
    ts      timestamp,
    d       date,
    tm      time,
    tmtz    timetz,
    iv      interval,
    u       uuid,
    jb      jsonb,
    js      json,
    ia      integer[],
    ta      text[],
    fa      double precision[],
    ca      vt_inner[],
    comp    vt_outer,
    mood    vt_mood,
    pos     vt_posint,
    posa    vt_posint[],
    ip      inet,
    net     cidr,
    ci      citext,
    "Zé ü"  text,
    "B"     text
);
ALTER TABLE public.vt DROP COLUMN gone;

-- composite primary key, an excluded column
CREATE TABLE public.vt2 (
    code  text,
    n     integer,
    body  text,
    note  text,
    PRIMARY KEY (code, n)
);

INSERT INTO public.vt2 VALUES ('pre', 0, 'exists before track', NULL);  -- no backfill

-- a label that needs quoting, awkward column names
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."Orders" ("select" integer PRIMARY KEY, "q""uote" text, pt point, "ünï" jsonb);

SELECT chainstore.track('public.vt');
SELECT chainstore.track('public.vt2', exclude_columns => '{note}');
SELECT chainstore.track('"My Schema"."Orders"');
`;

// random text: printable ASCII (quotes, braces, commas, backslashes), BMP, astral
const RTEXT = String.raw`CREATE FUNCTION pg_temp.rtext(n integer) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(string_agg(CASE WHEN random() < 0.7 THEN chr(32 + (random() * 94)::int)
                                    WHEN random() < 0.9 THEN chr(160 + (random() * 50000)::int)
                                    ELSE chr(128512 + (random() * 50)::int) END, ''), '')
    FROM generate_series(1, n)
$$;
`;

// Written with session settings far from export.sql's: the stored bytes
// must not depend on them (spec section 8).
const WRITES_1 = String.raw`
SET TimeZone = 'Asia/Kolkata';
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'postgres_verbose';
SET extra_float_digits = 0;
SET bytea_output = 'escape';

INSERT INTO public.vt (id, b, i2, i4, i8, n, n2, f4, f8, t, vc, bp, nm, ch, by, tstz, ts, d, tm, tmtz, iv, u,
                       jb, js, ia, ta, fa, ca, comp, mood, pos, posa, ip, net, ci, "Zé ü", "B") VALUES
 (1, true, -32768, 2147483647, -9223372036854775808, 1.500, 2.5, 'NaN', '-0', 'héllo wörld ✓ 😀', 'vc', 'ab',
  'nm', 'x', '\x00ff', '2000-01-01 00:00:00+05:30', '2000-01-01 12:34:56.789', '2000-02-29', '23:59:59.999999',
  '04:05:06.5+05:30', '1 year 2 mons -3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"b": {"yy": [1, 2.50, {"k": null}], "xx": true}, "a": "x", "aa": 1e3, "ab": -0.0}', '{"b":1,  "a" : [1.0]}',
  '[0:1][-1:1]={{1,2,3},{4,NULL,6}}', '{"", NULL, "NULL", "a b", "q\"\\", "é"}', '{NaN,Infinity,-Infinity,-0,0.1}',
  ARRAY[ROW(1, 'x')::vt_inner, NULL, ROW(NULL, '')::vt_inner],
  ROW(ROW(5, 'a,b"c'), '{1.0,2.00,NaN}', NULL, 'happy')::vt_outer, 'ok', 7, '[3:4]={1,2}',
  '::ffff:1.2.3.4/100', '10.0.0.0/8', 'CaSe Ü', 'unicode name', 'upper'),
 (2, false, 0, 0, 0, 'NaN', NULL, 'Infinity', '-Infinity', '', '', '', '', '', '\x', 'infinity', '-infinity',
  'infinity', '00:00:00', '00:00:00-08:00:15', '0', '00000000-0000-0000-0000-000000000000',
  '[]', '[]', '{}', '{}', '{}', '{}', ROW(NULL, NULL, NULL, NULL)::vt_outer, 'sad', 1, '{}',
  '2001:db8::1', '2001:db8::/32', '', '', NULL),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-infinity', 'infinity',
  '-infinity', NULL, NULL, NULL, NULL, 'null', 'null', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL),
 (4, true, 1, 1, 1, '-0.000100', 0.001, 3.4028235e38, 1e-300, 'edge values', NULL, 'abcdef', NULL, NULL, NULL,
  '0044-03-15 12:00:00+00 BC', '1969-12-31 23:59:59.999999', '4713-11-24 BC', '24:00:00', '23:59:59+14:59',
  '-178000000 years', NULL, '"scalar ☃"', '"scalar"', '{1}', '{x}', '{1.5}', '{"(,)"}', NULL, NULL, NULL, NULL,
  '192.168.0.1/24', NULL, NULL, NULL, NULL);

INSERT INTO public.vt (id, t, tm) VALUES (6, 'to be deleted', '12:00');
INSERT INTO public.vt2 VALUES ('a', 1, 'one', 'n1'), ('a', 2, 'two', NULL), ('b', 1, 'three', 'n3');
INSERT INTO "My Schema"."Orders" VALUES
 (1, 'a"b', '(1.5,-0)', '{"s": "line\nbreak \"q\" \\ \u0001 é 😀", "a": 1, "a": 2, "ab": {"ba": [], "aa": {}}}'),
 (2, NULL, '(NaN,Infinity)', '[1e-20, 123456789012345678901234567890.123456789000]');

${RTEXT}-- 300 rows of random values over wide ranges
INSERT INTO public.vt (id, b, i2, i4, i8, n, f4, f8, t, bp, tstz, ts, d, tm, tmtz, iv, u, jb, ia, ta, fa, comp, ci)
SELECT 100 + g,
       random() < 0.5,
       (random() * 65535 - 32768)::int,
       (random() * 4294967295 - 2147483648)::bigint,
       ((random() - 0.5) * 9e18)::bigint,
       round((random() - 0.5)::numeric * 10::numeric ^ (random() * 40 - 20)::int, (random() * 30)::int),
       ((random() - 0.5) * 10::float8 ^ ((random() * 70)::int - 35))::real,
       (random() - 0.5) * 10::float8 ^ ((random() * 600)::int - 300),
       pg_temp.rtext((random() * 20)::int + 0 * g),
       pg_temp.rtext((random() * 6)::int + 0 * g),
       timestamptz '1900-01-01 00:00:00+00' + random() * interval '300 years',
       timestamp '0100-01-01 BC' + (random() * 1e6)::int * interval '1 day' + random() * interval '1 day',
       date '1000-01-01' + (random() * 1e6)::int,
       time '00:00' + random() * interval '24 hours',
       ((time '00:00' + random() * interval '24 hours')::text
         || CASE WHEN random() < 0.5 THEN '-' ELSE '+' END
         || lpad((random() * 14)::int::text, 2, '0') || ':' || lpad((random() * 59)::int::text, 2, '0'))::timetz,
       make_interval(years => ((random() - 0.5) * 200)::int, months => ((random() - 0.5) * 30)::int,
                     days => ((random() - 0.5) * 100)::int, secs => ((random() - 0.5) * 1e6)::numeric(20,6)::float8),
       gen_random_uuid(),
       jsonb_build_object('k' || g, random(), 'arr', jsonb_build_array(g, pg_temp.rtext(3), NULL, random() < 0.5),
                          'nested', jsonb_build_object('zz', g * 1.10, 'a', pg_temp.rtext(4))),
       format('[%s:%s]={%s,%s}', g - 150, g - 149, (random() * 1000)::int, CASE WHEN random() < 0.3 THEN 'NULL' ELSE '7' END)::int[],
       ARRAY[pg_temp.rtext((random() * 8)::int), NULL, pg_temp.rtext(2)],
       ARRAY[(random() - 0.5) * 1e10, 'NaN', '-0', random()],
       ROW(ROW(g, pg_temp.rtext(5)), ARRAY[round(random()::numeric, 4)], pg_temp.rtext(3), 'sad')::vt_outer,
       pg_temp.rtext(4)
FROM generate_series(1, 300) g;
DELETE FROM public.vt WHERE id >= 100 AND id % 7 = 0;

UPDATE public.vt SET t = 'updated', n = 1.50 WHERE id = 1;
UPDATE public.vt SET f4 = 1.1, f8 = 0.1 WHERE id = 2;
UPDATE public.vt SET t = t WHERE id = 1;                 -- no change: no new version
DELETE FROM public.vt WHERE id = 6;
UPDATE public.vt2 SET note = 'only the excluded column' WHERE code = 'a' AND n = 1;
UPDATE public.vt2 SET n = 20 WHERE code = 'a' AND n = 2;  -- key change: D + R
SELECT chainstore.seal_batch(1000) AS batch_1;
`;

const WRITES_2 = String.raw`
${RTEXT}
SET TimeZone = 'America/St_Johns';
INSERT INTO public.vt (id, t, tstz) VALUES (6, 're-inserted after delete', now());
UPDATE public.vt SET jb = jb || '{"new": [1, {"z": 2, "a": 3}]}', iv = iv * 2 WHERE id = 1;
DELETE FROM public.vt2 WHERE code = 'b';
SELECT chainstore.forget('public.vt2', '{"code": "a", "n": 1}');  -- salts gone, leaves stay
UPDATE public.vt SET f8 = f8 * 2, t = pg_temp.rtext(5) WHERE id >= 100 AND id % 3 = 0;
UPDATE "My Schema"."Orders" SET "q""uote" = '' WHERE "select" = 2;
ALTER TABLE public.vt ADD COLUMN added text;       -- nullable, no default: hashes unchanged
SELECT chainstore.seal_batch(7) AS batch_2;        -- a partial batch
SELECT chainstore.seal_batch(1000) AS batch_3;
INSERT INTO public.vt (id, added, ia) VALUES (5, 'after add column', '{{1},{2}}');  -- stays in the outbox
UPDATE public.vt2 SET body = 'unsealed' WHERE code = 'a' AND n = 20;
`;

test('integration: export + verify-db agree with the extension', { skip: PGURL ? false : 'CHAINSTORE_TEST_PGURL is not set; skipping the live-database test' }, () => {
  const db = `chainstore_verifier_${process.pid}`;
  const conn = withDatabase(PGURL, db);
  psql(PGURL, `DROP DATABASE IF EXISTS ${db};`);
  psql(PGURL, `CREATE DATABASE ${db} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';`);
  try {
    psql(conn, SETUP);
    psql(conn, WRITES_1);
    psql(conn, WRITES_2);

    const good = exportAndVerify(conn);
    assert.equal(good.status, 0, good.out);
    assert.match(good.out, /^verifier: \d+ versions, 3 batches, 0 problems/m, good.out);
    // sanity: the interesting rows and versions really are there
    assert.ok(good.doc.versions.length >= 400, good.out);
    assert.ok(good.doc.versions.some((v) => v.op === 'D'), 'a D version');
    assert.ok(good.doc.outbox.length >= 2, 'unsealed versions in the outbox');
    const vt = good.doc.tables.find((t) => t.label === 'public.vt');
    assert.equal(vt.rows.filter((r) => Number(r.values.id) < 100).length, 6);
    assert.ok(vt.rows.length > 250);
    assert.ok(good.doc.tables.some((t) => t.label === '"My Schema"."Orders"'), 'quoted label');
    assert.equal(good.doc.batches.find((b) => b.batch_id === '2').record_count, '7');

    // tamper with one stored chain hash (bypassing any protective trigger)
    psql(conn, `SET session_replication_role = replica;
      UPDATE chainstore.versions SET chain_hash = sha256(chain_hash)
      WHERE version_id = (SELECT min(version_id) FROM chainstore.versions);`);
    const bad = exportAndVerify(conn);
    assert.equal(bad.status, 1, bad.out);
    assert.match(bad.out, /^problem: .*(chain_hash|prev_hash)/m, bad.out);
    assert.doesNotMatch(bad.out, / 0 problems/);
  } finally {
    if (!process.env.CHAINSTORE_TEST_KEEP) psql(PGURL, `DROP DATABASE IF EXISTS ${db};`);
  }
});

// Spec sections 2 and 8: text is UTF-8 whatever the session's client_encoding.
// Type send functions that emit text (citext's textsend, via pq_sendtext)
// convert to the client encoding; chainstore calls them as for a UTF-8
// client. This failed before that fix.
test('integration: citext written with client_encoding=LATIN1 still verifies', {
  skip: PGURL ? false : 'CHAINSTORE_TEST_PGURL is not set; skipping the live-database test',
}, () => {
  const db = `chainstore_verifier_enc_${process.pid}`;
  const conn = withDatabase(PGURL, db);
  psql(PGURL, `DROP DATABASE IF EXISTS ${db};`);
  psql(PGURL, `CREATE DATABASE ${db} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';`);
  try {
    psql(conn, String.raw`
      CREATE EXTENSION citext;
      CREATE EXTENSION chainstore;
      CREATE TABLE public.enc (id integer PRIMARY KEY, c citext, t text);
      SELECT chainstore.track('public.enc');
      SET client_encoding = 'LATIN1';
      INSERT INTO public.enc VALUES (1, convert_from('\xc3a9', 'UTF8'), convert_from('\xc3a9', 'UTF8'));
      SELECT chainstore.seal_batch();`);
    const r = exportAndVerify(conn);
    assert.equal(r.status, 0, r.out);
  } finally {
    if (!process.env.CHAINSTORE_TEST_KEEP) psql(PGURL, `DROP DATABASE IF EXISTS ${db};`);
  }
});
