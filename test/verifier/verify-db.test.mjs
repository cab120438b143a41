// verify-db's checks on a synthetic export built in memory (no database):
// a consistent export passes, and each kind of tampering is reported.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeDeletionFromKey, encodeKey, encodeRow, makeType as T } from './encoding.mjs';
import { ZERO32, batchHash, buildTree, chainHash, leafHash, leafInput, proofForLeaf, sha256 } from './merkle.mjs';
import { verifyExport, writebackTargets } from './verify-db.mjs';

const hex = (b) => Buffer.from(b).toString('hex');
const VERIFY = fileURLToPath(new URL('./verify-db.mjs', import.meta.url));

const catalog = {
  20: { typname: 'int8', nspname: 'pg_catalog', typtype: 'b', typsubscript: '-', typelem: '0', typbasetype: '0' },
  23: { typname: 'int4', nspname: 'pg_catalog', typtype: 'b', typsubscript: '-', typelem: '0', typbasetype: '0' },
  25: { typname: 'text', nspname: 'pg_catalog', typtype: 'b', typsubscript: '-', typelem: '0', typbasetype: '0' },
  1007: {
    typname: '_int4', nspname: 'pg_catalog', typtype: 'b', typsubscript: 'array_subscript_handler',
    typelem: '23', elem_delim: ',', typbasetype: '0',
  },
};
const columns = [
  { name: 'id', type: '20', attnum: 1 },
  { name: 'name', type: '25', attnum: 2 },
  { name: 'tags', type: '1007', attnum: 4 },
  { name: 'secret', type: '25', attnum: 5 },
  { name: 'hash_out', type: '25', attnum: 6 },
];
const jsTypes = { id: T('int8'), name: T('text'), tags: T.array(T('int4')) };
const LABEL = 'public.s';

/** fields of a row for the hashed columns (secret and hash_out are excluded) */
const fields = (values) => Object.keys(jsTypes).map((name) => ({ name, type: jsTypes[name], text: values[name] ?? null }));
const keyOf = (id) => encodeKey([{ name: 'id', type: T('int8'), text: String(id) }]);

function buildExport() {
  const versions = [];
  let nextId = 1;
  const add = (id, kind, values, prev) => {
    const enc = kind === 'D' ? encodeDeletionFromKey(LABEL, keyOf(id)) : encodeRow(LABEL, 'R', fields(values));
    const chain = chainHash(prev, enc);
    const salt = Buffer.alloc(16, nextId);
    const li = leafInput(salt, chain);
    const v = {
      version_id: String(nextId++), table_id: 1, record_key: hex(keyOf(id)),
      version: versions.filter((x) => x.record_key === hex(keyOf(id))).length + 1,
      op: kind === 'D' ? 'D' : prev.equals(ZERO32) ? 'I' : 'U',
      record_hash: hex(sha256(enc)), prev_hash: hex(prev), chain_hash: hex(chain),
      salt: hex(salt), leaf_input: hex(li), leaf: hex(leafHash(li)), record_pk: { id },
    };
    versions.push(v);
    return chain;
  };
  const row1 = { id: '1', name: 'new', tags: '[0:1]={1,NULL}', secret: 'x', hash_out: 'y' };
  let h1 = add(1, 'R', { id: '1', name: 'old' }, ZERO32);
  const h2 = add(2, 'R', { id: '2', name: '' }, ZERO32);
  add(2, 'D', null, h2);
  h1 = add(1, 'R', row1, h1);
  // forget() of record 2's first version: salt gone, leaf stays
  versions[1].salt = null;

  // batch 1 holds versions 1..3, version 4 is still in the outbox
  const members = versions.slice(0, 3);
  const tree = buildTree(members.map((v) => Buffer.from(v.leaf, 'hex')));
  const sealedAt = '1700000000123456';
  const batch = {
    batch_id: '1', prev_batch_hash: hex(ZERO32), root: hex(tree.root), record_count: '3', sealed_at_us: sealedAt,
  };
  batch.batch_hash = hex(batchHash({
    batchId: 1n, prevBatchHash: ZERO32, root: tree.root, recordCount: 3, sealedAtMicros: sealedAt,
  }));
  const sorted = members.map((v) => v.leaf).sort();
  const proofs = members.map((v) => ({
    version_id: v.version_id, batch_id: '1', leaf_index: sorted.indexOf(v.leaf),
    proof: hex(Buffer.concat(proofForLeaf(tree, Buffer.from(v.leaf, 'hex')))),
  }));

  const row3 = { id: '3', name: 'pre-existing', tags: null, secret: null, hash_out: null };
  const rowOf = (values) => ({ values, canonical: hex(encodeRow(LABEL, 'R', fields(values))) });
  return {
    format: 'chainstore-verifier-export-v1',
    settings: {
      TimeZone: 'UTC', DateStyle: 'ISO, MDY', IntervalStyle: 'iso_8601', extra_float_digits: '3',
      bytea_output: 'hex', client_encoding: 'UTF8',
    },
    types: catalog,
    tables: [{
      table_id: 1, relid: 'public.s', label: LABEL, key_columns: ['id'], exclude_columns: ['secret'],
      writeback: { chain_hash: 'hash_out' }, active: true, present: true, rows_exported: true, columns,
      rows: [rowOf(row1), rowOf(row3)],
    }],
    versions,
    batches: [batch],
    proofs,
    outbox: ['4'],
  };
}

test('a consistent export has no problems', () => {
  const { problems, stats } = verifyExport(buildExport());
  assert.deepEqual(problems, []);
  assert.equal(stats.versions, 4);
  assert.equal(stats.batches, 1);
  assert.equal(stats.rows, 2);
  assert.equal(stats.untrackedRows, 1);
});

const tamperings = {
  'chain hash': (d) => { d.versions[0].chain_hash = 'ff' + d.versions[0].chain_hash.slice(2); },
  'record hash of the latest version': (d) => { d.versions[3].record_hash = hex(ZERO32); },
  'tombstone record hash': (d) => { d.versions[2].record_hash = hex(ZERO32); },
  'row value changed behind the chain': (d) => { d.tables[0].rows[0].values.name = 'edited'; },
  'C encoding differs': (d) => { d.tables[0].rows[1].canonical += '00'; },
  'row of a live record vanished': (d) => { d.tables[0].rows.shift(); },
  'deleted record reappeared': (d) => {
    d.tables[0].rows.push({ values: { id: '2', name: '' }, canonical: null });
  },
  'leaf input': (d) => { d.versions[0].leaf_input = hex(Buffer.alloc(32, 9)); },
  'leaf': (d) => { d.versions[3].leaf = hex(Buffer.alloc(32, 9)); },
  'version numbering': (d) => { d.versions[3].version = 3; },
  'root': (d) => { d.batches[0].root = hex(Buffer.alloc(32, 1)); },
  'proof': (d) => { d.proofs[0].proof = d.proofs[0].proof.slice(0, 64) + hex(Buffer.alloc(32, 1)); },
  'leaf index': (d) => { d.proofs[0].leaf_index = (d.proofs[0].leaf_index + 1) % 3; },
  'record count': (d) => { d.batches[0].record_count = '4'; },
  'sealed_at': (d) => { d.batches[0].sealed_at_us = '1700000000123457'; },
  'prev batch hash': (d) => { d.batches[0].prev_batch_hash = hex(Buffer.alloc(32, 1)); },
  'outbox lost a version': (d) => { d.outbox = []; },
  'session settings': (d) => { d.settings.IntervalStyle = 'postgres'; },
};

for (const [name, tamper] of Object.entries(tamperings)) {
  test(`tampering is reported: ${name}`, () => {
    const doc = buildExport();
    tamper(doc);
    assert.notDeepEqual(verifyExport(doc).problems, []);
  });
}

test('write-back targets are the column names in the writeback config', () => {
  assert.deepEqual([...writebackTargets({ chain_hash: 'h', x: ['a', { y: 'b' }], z: 'nope' }, ['h', 'a', 'b', 'c'])], ['h', 'a', 'b']);
});

test('CLI: exit status and summary line, stdin input', () => {
  const ok = spawnSync(process.execPath, [VERIFY, '--export', '-'], { input: JSON.stringify(buildExport()), encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^verifier: 4 versions, 1 batches, 0 problems/m);
  const doc = buildExport();
  doc.versions[0].chain_hash = hex(ZERO32);
  const bad = spawnSync(process.execPath, [VERIFY, '--export', '-'], { input: JSON.stringify(doc), encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /^problem: .*chain_hash/m);
  const usage = spawnSync(process.execPath, [VERIFY], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
});
