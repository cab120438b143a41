// chainstore.ipfs_cid() / _ipfs_cid_chunked() / cid_is_valid() against the JS
// IPFS stack (ipfs-unixfs-importer, multiformats) on fixed and random inputs.
//
//   CHAINSTORE_TEST_PGURL='postgresql:///postgres?host=/tmp&port=54331&user=postgres' \
//     node --test test/cid/
//
// Without CHAINSTORE_TEST_PGURL only the database-free checks run.  The URL's
// role needs CREATEDB: the test works in its own scratch database
// (chainstore_cid_<pid>), dropped afterwards unless CHAINSTORE_TEST_KEEP=1.
// Random cases come from CHAINSTORE_TEST_SEED when set (printed otherwise).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  KUBO_CHUNK_SIZE, LARGE_VECTOR, SQL_PATTERN_FUNCTION, VECTORS,
  cidCases, importerCid, pattern, referenceIsValid, sqlCall, sqlString,
} from './crosscheck.mjs';

const PGURL = process.env.CHAINSTORE_TEST_PGURL;
const SKIP = PGURL ? false : 'CHAINSTORE_TEST_PGURL is not set; skipping the live-database test';
const SEED = Number(process.env.CHAINSTORE_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: a small seeded generator, so a failing run can be repeated. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function withDatabase(conn, db) {
  if (/^postgres(ql)?:\/\//.test(conn)) {
    const u = new URL(conn);
    u.pathname = '/' + encodeURIComponent(db);
    u.searchParams.delete('dbname');
    return u.toString();
  }
  return `${conn} dbname=${db}`;
}

/** Run SQL (read from stdin, so inputs can be large); returns the unaligned tuples. */
function psql(conn, sql) {
  const r = spawnSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', conn], {
    input: sql,
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`psql failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

const byteaLiteral = (bytes) => `'\\x${Buffer.from(bytes).toString('hex')}'::bytea`;

test('importer settings reproduce the known Kubo CIDs', async () => {
  assert.equal(await importerCid(new TextEncoder().encode('hello world\n')),
    'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4');
  assert.equal(await importerCid(new Uint8Array(0)),
    'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku');
});

test('cid_is_valid cases of sql/cid.sql agree with multiformats', async () => {
  for (const [name, text, valid] of await cidCases()) assert.equal(referenceIsValid(text), valid, name);
});

test('database: ipfs_cid and cid_is_valid agree with the JS IPFS stack', { skip: SKIP }, async (t) => {
  const db = `chainstore_cid_${process.pid}`;
  const conn = withDatabase(PGURL, db);
  psql(PGURL, `DROP DATABASE IF EXISTS ${db};`);
  psql(PGURL, `CREATE DATABASE ${db} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';`);
  const random = rng(SEED);
  const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
  const randomBytes = (n) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = int(0, 255);
    return b;
  };
  try {
    psql(conn, 'SET client_min_messages = warning; CREATE EXTENSION chainstore;');

    await t.test('the vectors of sql/cid.sql', async () => {
      const got = psql(conn, SQL_PATTERN_FUNCTION + VECTORS.map((v) => `SELECT ${sqlCall(v)};`).join('\n'))
        .trim().split('\n');
      assert.equal(got.length, VECTORS.length);
      for (const [i, v] of VECTORS.entries()) {
        const want = await importerCid(v.bytes, v.chunk === undefined ? {} : { chunkSize: v.chunk, maxLinks: v.links });
        assert.equal(got[i], want, v.name);
      }
    });

    await t.test(`random inputs at Kubo's defaults (seed ${SEED})`, async () => {
      const sizes = [0, 1, 2, 1023, KUBO_CHUNK_SIZE - 1, KUBO_CHUNK_SIZE, KUBO_CHUNK_SIZE + 1,
        2 * KUBO_CHUNK_SIZE - 1, 2 * KUBO_CHUNK_SIZE, 2 * KUBO_CHUNK_SIZE + 1];
      for (let i = 0; i < 14; i++) sizes.push(int(0, 3 * 1024 * 1024));
      const inputs = sizes.map((n) => randomBytes(n));
      const got = psql(conn, inputs.map((b) => `SELECT chainstore.ipfs_cid(${byteaLiteral(b)});`).join('\n'))
        .trim().split('\n');
      for (const [i, b] of inputs.entries()) {
        assert.equal(got[i], await importerCid(b), `${b.length} random bytes (seed ${SEED})`);
      }
    });

    await t.test(`random inputs, small chunks and fan-outs (seed ${SEED})`, async () => {
      const cases = [];
      for (let i = 0; i < 120; i++) {
        const chunk = int(1, 64);
        const links = int(2, 12);
        cases.push({ bytes: randomBytes(int(0, chunk * links * links * int(1, 3) + 1)), chunk, links });
      }
      const got = psql(conn, cases.map((c) =>
        `SELECT chainstore._ipfs_cid_chunked(${byteaLiteral(c.bytes)}, ${c.chunk}, ${c.links});`).join('\n'))
        .trim().split('\n');
      for (const [i, c] of cases.entries()) {
        assert.equal(got[i], await importerCid(c.bytes, { chunkSize: c.chunk, maxLinks: c.links }),
          `${c.bytes.length} bytes, chunk ${c.chunk}, links ${c.links} (seed ${SEED})`);
      }
    });

    await t.test('45.6 MB: a second layer at Kubo\'s defaults', async () => {
      const got = psql(conn, `${SQL_PATTERN_FUNCTION} SELECT chainstore.ipfs_cid(pg_temp.cid_pattern(${LARGE_VECTOR.n}));`).trim();
      assert.equal(got, await importerCid(pattern(LARGE_VECTOR.n)));
    });

    await t.test(`cid_is_valid on mutated and random text (seed ${SEED})`, async () => {
      const alphabet = 'abcdefghijklmnopqrstuvwxyz234567ABCDEFGHIJKLMNOPQRSTUVWXYZ0189=-_ +/Qm\u00e9\u20ac';
      const pick = (s) => [...s][int(0, [...s].length - 1)];
      const seeds = (await cidCases()).filter(([, , valid]) => valid).map(([, text]) => text);
      const texts = [];
      for (let i = 0; i < 3000; i++) {
        const base = [...seeds[int(0, seeds.length - 1)]];
        const pos = int(0, base.length);
        switch (int(0, 5)) {
          case 0: base[Math.min(pos, base.length - 1)] = pick(alphabet); break;    // substitute
          case 1: base.splice(pos, 1); break;                                      // delete
          case 2: base.splice(pos, 0, pick(alphabet)); break;                      // insert
          case 3: base.length = pos; break;                                        // truncate
          case 4: base.push(...Array.from({ length: int(1, 60) }, () => pick(alphabet))); break; // extend
          default: base.splice(0, base.length, ...Array.from({ length: int(0, 80) }, () => pick(alphabet))); // noise
        }
        texts.push(base.join(''));
      }
      const got = psql(conn, texts.map((s) => `SELECT chainstore.cid_is_valid(${sqlString(s)});`).join('\n'))
        .trim().split('\n');
      assert.equal(got.length, texts.length);
      let valid = 0;
      for (const [i, s] of texts.entries()) {
        const want = referenceIsValid(s);
        valid += want ? 1 : 0;
        assert.equal(got[i], want ? 't' : 'f', `cid_is_valid(${JSON.stringify(s)}) (seed ${SEED})`);
      }
      assert.ok(valid > 40, `only ${valid} valid mutants: the fuzz is not exercising the accepting path`);
    });
  } finally {
    if (!process.env.CHAINSTORE_TEST_KEEP) psql(PGURL, `DROP DATABASE IF EXISTS ${db};`);
  }
});
