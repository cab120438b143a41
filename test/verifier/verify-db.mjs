#!/usr/bin/env node
// verify-db.mjs — check a chainstore export (test/verifier/export.sql)
// against docs/canonical-encoding.md, independently of the C extension.
//
//   node test/verifier/verify-db.mjs --export FILE.json     (FILE "-" = stdin)
//
// Prints every disagreement and a summary line; exits 1 if there is any
// problem, 2 on usage or input errors.

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { encodeDeletionFromKey, encodeKey, encodeRow, typesFromExport } from './encoding.mjs';
import {
  ZERO32, batchHash, buildTree, chainHash, leafHash, leafInput, proofForLeaf, sha256, splitProof, verifyProof,
} from './merkle.mjs';

const EXPECTED_SETTINGS = {
  TimeZone: (v) => v === 'UTC',
  DateStyle: (v) => /^ISO\b/.test(v),
  IntervalStyle: (v) => v === 'iso_8601',
  extra_float_digits: (v) => v === '3',
  bytea_output: (v) => v === 'hex',
  client_encoding: (v) => v === 'UTF8',
};

const hex = (b) => Buffer.from(b).toString('hex');
const fromHex = (s) => (s === null || s === undefined ? null : Buffer.from(s, 'hex'));

/**
 * Columns whose names appear as string values in the tracked table's
 * writeback configuration (the write-back targets, never hashed).
 */
export function writebackTargets(writeback, columnNames) {
  const names = new Set(columnNames);
  const out = new Set();
  const walk = (v) => {
    if (typeof v === 'string') {
      if (names.has(v)) out.add(v);
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(writeback ?? {});
  return out;
}

/** Run every check on a parsed export.  Returns { problems, stats }. */
export function verifyExport(doc) {
  const problems = [];
  const problem = (msg) => problems.push(msg);
  const stats = {
    versions: 0, batches: 0, rows: 0, untrackedRows: 0, records: 0, unsalted: 0, canonicalSkipped: 0,
  };

  if (doc.format !== 'chainstore-verifier-export-v1') problem(`unknown export format ${JSON.stringify(doc.format)}`);
  for (const [name, ok] of Object.entries(EXPECTED_SETTINGS)) {
    const v = doc.settings?.[name];
    if (!ok(String(v))) problem(`export setting ${name} = ${JSON.stringify(v)}, text forms would differ`);
  }

  const types = typesFromExport(doc.types ?? {});

  // --- tables ------------------------------------------------------------
  const tables = new Map();
  for (const t of doc.tables ?? []) {
    const colByName = new Map(t.columns.map((c) => [c.name, { name: c.name, type: types.get(String(c.type)) }]));
    const excluded = new Set(t.exclude_columns ?? []);
    for (const c of writebackTargets(t.writeback, colByName.keys())) excluded.add(c);
    const hashed = [...colByName.values()].filter((c) => !excluded.has(c.name));
    const keys = (t.key_columns ?? []).map((k) => colByName.get(k));
    if (t.present && keys.some((k) => !k)) problem(`table ${t.label}: key column missing from the table`);
    tables.set(t.table_id, { ...t, hashed, keys, rowsByKey: new Map() });
  }
  const labelOf = (tableId) => tables.get(tableId)?.label ?? `table_id ${tableId}`;

  // --- current rows: our encoding vs chainstore.canonical() ----------------
  for (const t of tables.values()) {
    if (!t.rows_exported) continue;
    for (const row of t.rows ?? []) {
      stats.rows++;
      const fieldsOf = (cols) => cols.map((c) => ({ name: c.name, type: c.type, text: row.values[c.name] }));
      let key;
      let enc = null;
      try {
        key = encodeKey(fieldsOf(t.keys));
      } catch (e) {
        problem(`${t.label} row ${describeRow(t, row)}: cannot encode its key: ${e.message}`);
        continue;
      }
      try {
        enc = encodeRow(t.label, 'R', fieldsOf(t.hashed));
      } catch (e) {
        problem(`${t.label} row ${describeRow(t, row)}: cannot encode: ${e.message}`);
      }
      const keyHex = hex(key);
      if (t.rowsByKey.has(keyHex)) problem(`${t.label}: two rows with key ${describeRow(t, row)}`);
      t.rowsByKey.set(keyHex, { row, enc });
      if (enc === null) {
        // already reported
      } else if (!('canonical' in row)) {
        stats.canonicalSkipped++;
      } else if (row.canonical === null) {
        problem(`${t.label} row ${describeRow(t, row)}: chainstore.canonical() returned NULL`);
      } else if (row.canonical !== hex(enc)) {
        problem(
          `${t.label} row ${describeRow(t, row)}: encoding differs from chainstore.canonical()` +
            ` (first difference at byte ${firstDifference(hex(enc), row.canonical)})\n` +
            `    verifier: ${hex(enc)}\n    C       : ${row.canonical}`,
        );
      }
    }
  }

  // --- versions, record by record -------------------------------------------
  const versionsById = new Map();
  const records = new Map();
  for (const v of doc.versions ?? []) {
    stats.versions++;
    if (versionsById.has(v.version_id)) problem(`duplicate version_id ${v.version_id}`);
    versionsById.set(v.version_id, v);
    const rk = `${v.table_id}/${v.record_key}`;
    if (!records.has(rk)) records.set(rk, []);
    records.get(rk).push(v);
  }
  stats.records = records.size;

  for (const list of records.values()) {
    try {
      checkRecord(list);
    } catch (e) {
      problem(`${labelOf(list[0].table_id)} record key ${list[0].record_key}: cannot check: ${e.message}`);
    }
  }

  function checkRecord(list) {
    list.sort((a, b) => a.version - b.version);
    const t = tables.get(list[0].table_id);
    const latest = list[list.length - 1];
    const who = `${labelOf(list[0].table_id)} record ${describeKey(latest)}`;
    if (!t) problem(`${who}: table_id ${list[0].table_id} is not in chainstore.tracked`);
    let prev = ZERO32;
    list.forEach((v, k) => {
      const at = `${who} version ${v.version} (version_id ${v.version_id})`;
      if (v.version !== k + 1) problem(`${at}: expected version number ${k + 1}`);
      if (!['I', 'U', 'D'].includes(v.op)) problem(`${at}: unknown op ${JSON.stringify(v.op)}`);
      for (const f of ['record_hash', 'prev_hash', 'chain_hash', 'leaf_input', 'leaf']) {
        if (typeof v[f] !== 'string' || v[f].length !== 64) problem(`${at}: ${f} is not 32 bytes`);
      }
      const chain = fromHex(v.chain_hash);
      if (v.prev_hash !== hex(prev)) {
        problem(`${at}: prev_hash ${v.prev_hash} != previous chain_hash ${hex(prev)}`);
      }
      // a tombstone is fully determined by label and key: check every one
      if (v.op === 'D' && t) checkEncoding(at, v, encodeDeletionFromKey(t.label, fromHex(v.record_key)));
      if (v.salt === null || v.salt === undefined) stats.unsalted++;
      else {
        if (v.salt.length !== 32) problem(`${at}: salt is not 16 bytes`);
        const li = leafInput(fromHex(v.salt), chain);
        if (hex(li) !== v.leaf_input) problem(`${at}: leaf_input ${v.leaf_input} != SHA256(salt || chain_hash) ${hex(li)}`);
      }
      const leaf = leafHash(fromHex(v.leaf_input));
      if (hex(leaf) !== v.leaf) problem(`${at}: leaf ${v.leaf} != keccak(keccak(leaf_input)) ${hex(leaf)}`);
      prev = chain;
    });

    // the latest version must describe the current row
    if (t && t.rows_exported) {
      const cur = t.rowsByKey.get(latest.record_key);
      const at = `${who} latest version ${latest.version} (version_id ${latest.version_id})`;
      if (latest.op === 'D') {
        if (cur) problem(`${at}: deleted, but a row with this key exists`);
      } else if (!cur) {
        problem(`${at}: op ${latest.op}, but no row with this key exists`);
      } else if (cur.enc) {
        checkEncoding(at, latest, cur.enc);
      }
    }
  }

  // rows that no version describes (e.g. present before track() without backfill)
  for (const t of tables.values()) {
    for (const keyHex of t.rowsByKey.keys()) if (!records.has(`${t.table_id}/${keyHex}`)) stats.untrackedRows++;
  }

  function checkEncoding(at, v, enc) {
    const rh = sha256(enc);
    if (hex(rh) !== v.record_hash) problem(`${at}: record_hash ${v.record_hash} != SHA256(encoding) ${hex(rh)}`);
    const ch = chainHash(fromHex(v.prev_hash), enc);
    if (hex(ch) !== v.chain_hash) {
      problem(`${at}: chain_hash ${v.chain_hash} != SHA256(prev_hash || encoding) ${hex(ch)}`);
    }
  }

  // --- batches, proofs and outbox --------------------------------------------
  const outbox = new Set(doc.outbox ?? []);
  const proofsByBatch = new Map();
  const proved = new Set();
  for (const p of doc.proofs ?? []) {
    if (!versionsById.has(p.version_id)) problem(`proof for unknown version_id ${p.version_id}`);
    if (proved.has(p.version_id)) problem(`version_id ${p.version_id} has more than one proof`);
    proved.add(p.version_id);
    if (outbox.has(p.version_id)) problem(`version_id ${p.version_id} is sealed but still in the outbox`);
    if (!proofsByBatch.has(p.batch_id)) proofsByBatch.set(p.batch_id, []);
    proofsByBatch.get(p.batch_id).push(p);
  }
  for (const id of outbox) if (!versionsById.has(id)) problem(`outbox holds unknown version_id ${id}`);
  for (const id of versionsById.keys()) {
    if (!proved.has(id) && !outbox.has(id)) problem(`version_id ${id} is neither sealed in a batch nor in the outbox`);
  }

  const batches = [...(doc.batches ?? [])].sort((a, b) => (BigInt(a.batch_id) < BigInt(b.batch_id) ? -1 : 1));
  let prevBatch = ZERO32;
  batches.forEach((b, k) => {
    stats.batches++;
    const at = `batch ${b.batch_id}`;
    if (BigInt(b.batch_id) !== BigInt(k + 1)) problem(`${at}: batch ids are not consecutive from 1 (expected ${k + 1})`);
    if (b.prev_batch_hash !== hex(prevBatch)) {
      problem(`${at}: prev_batch_hash ${b.prev_batch_hash} != previous batch_hash ${hex(prevBatch)}`);
    }
    const members = proofsByBatch.get(b.batch_id) ?? [];
    proofsByBatch.delete(b.batch_id);
    if (String(members.length) !== String(b.record_count)) {
      problem(`${at}: record_count ${b.record_count} but ${members.length} proofs`);
    }
    const root = fromHex(b.root);
    const leaves = members.map((p) => versionsById.get(p.version_id)).filter(Boolean).map((v) => fromHex(v.leaf));
    if (leaves.length === 0) problem(`${at}: no member versions`);
    else if (leaves.length === members.length) {
      const tree = buildTree(leaves);
      if (!tree.root.equals(root)) problem(`${at}: root ${b.root} != recomputed ${hex(tree.root)}`);
      const indexes = new Set();
      for (const p of members) {
        const leaf = fromHex(versionsById.get(p.version_id).leaf);
        const pat = `${at} proof of version_id ${p.version_id}`;
        let stored;
        try {
          stored = splitProof(fromHex(p.proof));
        } catch (e) {
          problem(`${pat}: ${e.message}`);
          continue;
        }
        if (!verifyProof(leaf, stored, root)) problem(`${pat}: does not verify against the stored root`);
        const expected = proofForLeaf(tree, leaf);
        if (hex(Buffer.concat(expected)) !== p.proof) {
          problem(`${pat}: differs from the spec's proof\n    stored  : ${p.proof}\n    expected: ${hex(Buffer.concat(expected))}`);
        }
        // leaf_index: the leaf's position among the batch's sorted leaves
        // (chainstore.proofs' documented meaning; the leaf sits at node 2m-2-i)
        const sortedPos = 2 * members.length - 2 - tree.nodeOf(leaf);
        if (p.leaf_index !== sortedPos) {
          problem(`${pat}: leaf_index ${p.leaf_index}, but the leaf is at sorted position ${sortedPos}`);
        }
        if (indexes.has(p.leaf_index)) problem(`${pat}: leaf_index ${p.leaf_index} used twice`);
        indexes.add(p.leaf_index);
      }
    }
    const bh = batchHash({
      batchId: b.batch_id,
      prevBatchHash: fromHex(b.prev_batch_hash),
      root,
      recordCount: b.record_count,
      sealedAtMicros: b.sealed_at_us,
    });
    if (hex(bh) !== b.batch_hash) problem(`${at}: batch_hash ${b.batch_hash} != recomputed ${hex(bh)}`);
    prevBatch = fromHex(b.batch_hash);
  });
  for (const id of proofsByBatch.keys()) problem(`proofs refer to unknown batch ${id}`);

  return { problems, stats };
}

/** Byte offset of the first difference between two hex strings. */
function firstDifference(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return Math.floor(i / 2);
}

function describeKey(v) {
  return v.record_pk ? JSON.stringify(v.record_pk) : `key ${v.record_key}`;
}

function describeRow(t, row) {
  return JSON.stringify(Object.fromEntries((t.key_columns ?? []).map((k) => [k, row.values[k]])));
}

export function summaryLine({ problems, stats }) {
  return (
    `verifier: ${stats.versions} versions, ${stats.batches} batches, ${problems.length} problems` +
    ` (${stats.records} records, ${stats.rows} rows checked, ${stats.untrackedRows} rows without versions,` +
    ` ${stats.unsalted} forgotten salts` +
    (stats.canonicalSkipped ? `, ${stats.canonicalSkipped} rows not compared with chainstore.canonical()` : '') +
    ')'
  );
}

function main(argv) {
  const i = argv.indexOf('--export');
  if (i < 0 || !argv[i + 1]) {
    process.stderr.write('usage: node test/verifier/verify-db.mjs --export FILE.json   (FILE "-" reads stdin)\n');
    return 2;
  }
  let doc;
  try {
    const file = argv[i + 1];
    doc = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));
  } catch (e) {
    process.stderr.write(`verifier: cannot read export: ${e.message}\n`);
    return 2;
  }
  let result;
  try {
    result = verifyExport(doc);
  } catch (e) {
    process.stderr.write(`verifier: cannot check export: ${e.stack}\n`);
    return 2;
  }
  for (const p of result.problems) process.stdout.write(`problem: ${p}\n`);
  process.stdout.write(summaryLine(result) + '\n');
  return result.problems.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
