// Tests for the chainstore test IPFS node (test/ipfs-node/server.mjs).
// Run: node --test test/ipfs-node/
//
// CIDs are checked three ways: against known Kubo vectors (PEERS.md and Kubo's own
// test/cli/cid_profiles_test.go, which uses ChaCha20-seeded files we regenerate
// here), against reference-cid.mjs (an independent node:crypto implementation of
// Kubo's importer), and the reference itself against those Kubo vectors.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { base32, kuboAddCid, testBytes } from './reference-cid.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(HERE, 'server.mjs');
const START_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 5000;
const REQ_TIMEOUT_MS = 20000;

// --- helpers ----------------------------------------------------------------

/** Start a node; resolves once it printed "ready <port>" (bounded by START_TIMEOUT_MS). */
function startNode(repo, extra = []) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SERVER, '--port', '0', '--repo', repo, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`node did not print ready within ${START_TIMEOUT_MS} ms; stderr: ${err}`));
    }, START_TIMEOUT_MS);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /ready (\d+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        const port = Number(m[1]);
        resolve({ proc, port, url: `http://127.0.0.1:${port}`, stderr: () => err });
      }
    });
    proc.stderr.on('data', (d) => {
      err += d;
    });
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`node exited early (code ${code}, signal ${sig}); stderr: ${err}`));
    });
  });
}

/** Stop a node with a signal and wait for its exit (bounded); SIGKILL as last resort. */
function stopNode(node, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (!node || node.proc.exitCode !== null || node.proc.signalCode !== null) {
      resolve({ code: node?.proc.exitCode, signal: node?.proc.signalCode });
      return;
    }
    const timer = setTimeout(() => node.proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
    node.proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig });
    });
    node.proc.kill(signal);
  });
}

function tmpRepo(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `chainstore-ipfs-${tag}-`));
}

async function rpc(node, cmd, query = {}, init = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    for (const one of [].concat(v)) qs.append(k, String(one));
  }
  return fetch(`${node.url}/api/v0/${cmd}?${qs}`, {
    method: 'POST',
    signal: AbortSignal.timeout(REQ_TIMEOUT_MS),
    ...init,
  });
}

async function add(node, bytes, query = {}, name = 'blob') {
  const fd = new FormData();
  fd.append('file', new Blob([bytes]), name);
  const res = await rpc(node, 'add', query, { body: fd });
  const text = await res.text();
  assert.equal(res.status, 200, `add failed: ${text}`);
  const lines = text.trim().split('\n').map((l) => JSON.parse(l));
  return lines[lines.length - 1];
}

async function cat(node, arg, query = {}) {
  const res = await rpc(node, 'cat', { arg, ...query });
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

// Kubo's test/cli/testutils DeterministicRandomReaderBytes: ChaCha20 keystream,
// key = sha256(seed), zero nonce, counter 0.
function kuboDeterministic(size, seed) {
  const key = createHash('sha256').update(seed).digest();
  const c = createCipheriv('chacha20', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(size)), c.final()]);
}

const HELLO = Buffer.from('hello world\n');

// --- the reference implementation against Kubo's own vectors ------------------

describe('reference implementation agrees with Kubo', () => {
  test('PEERS.md vectors', () => {
    assert.equal(kuboAddCid(HELLO, { cidVersion: 1 }).cid, 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4');
    assert.equal(kuboAddCid(HELLO, { cidVersion: 0 }).cid, 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o');
    assert.equal(kuboAddCid(Buffer.alloc(0), { cidVersion: 1 }).cid, 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku');
  });

  test("Kubo's cid_profiles vectors (unixfs-v0-2015 = Kubo defaults, and unixfs-v1-2025 params)", () => {
    assert.equal(kuboAddCid(kuboDeterministic(262144, 'chunk-v0-seed')).cid, 'QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE');
    assert.equal(kuboAddCid(kuboDeterministic(262145, 'chunk-v0-seed')).cid, 'QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ');
    const big = kuboDeterministic(174 * 262144 + 1, 'v0-seed');
    assert.equal(kuboAddCid(big.subarray(0, 174 * 262144)).cid, 'QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2');
    assert.equal(kuboAddCid(big).cid, 'QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW');
    const v1 = { cidVersion: 1, chunkSize: 1048576, maxLinks: 1024 };
    assert.equal(kuboAddCid(kuboDeterministic(1048576, 'chunk-v1-seed'), v1).cid, 'bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta');
    assert.equal(kuboAddCid(kuboDeterministic(1048577, 'chunk-v1-seed'), v1).cid, 'bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64');
  });
});

// --- one node for most tests ----------------------------------------------------

describe('ipfs node', () => {
  let node;
  let repo;
  before(async () => {
    repo = tmpRepo('main');
    node = await startNode(repo);
  });
  after(async () => {
    try {
      await stopNode(node);
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });

  test('PEERS.md vectors through /api/v0/add', async () => {
    const v1 = await add(node, HELLO, { 'cid-version': 1 });
    assert.deepEqual(v1, { Name: 'blob', Hash: 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4', Size: '12' });
    const v0 = await add(node, HELLO);
    assert.deepEqual(v0, { Name: 'blob', Hash: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', Size: '20' });
    const explicitV0 = await add(node, HELLO, { 'cid-version': 0 });
    assert.equal(explicitV0.Hash, 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o');
    const empty = await add(node, Buffer.alloc(0), { 'cid-version': 1 });
    assert.equal(empty.Hash, 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku');
    assert.equal(empty.Size, '0');
    const emptyV0 = await add(node, Buffer.alloc(0));
    assert.equal(emptyV0.Hash, kuboAddCid(Buffer.alloc(0)).cid);
  });

  test("Kubo's own multi-chunk vectors through /api/v0/add", async () => {
    assert.equal((await add(node, kuboDeterministic(262144, 'chunk-v0-seed'))).Hash, 'QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE');
    assert.equal((await add(node, kuboDeterministic(262145, 'chunk-v0-seed'))).Hash, 'QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ');
    const v1 = { 'cid-version': 1, chunker: 'size-1048576', 'max-file-links': 1024 };
    assert.equal((await add(node, kuboDeterministic(1048577, 'chunk-v1-seed'), v1)).Hash, 'bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64');
    // 174 chunks of 256 KiB + 1 byte: Kubo's default import with a second DAG layer (45.6 MB, ~1 s)
    const big = kuboDeterministic(174 * 262144 + 1, 'v0-seed');
    const r = await add(node, big, { pin: false });
    assert.equal(r.Hash, 'QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW');
    assert.equal(r.Size, String(kuboAddCid(big).size));
  });

  const cases = [
    ['1 MiB + 1 byte, CIDv1 defaults', 1048577, { 'cid-version': 1 }, { cidVersion: 1 }],
    ['1 MiB + 1 byte, CIDv0 defaults', 1048577, {}, { cidVersion: 0 }],
    ['600 KiB, CIDv1 defaults', 600 * 1024, { 'cid-version': 1 }, { cidVersion: 1 }],
    ['600 KiB, CIDv0 defaults', 600 * 1024, {}, { cidVersion: 0 }],
    ['size-1024, 200 chunks (second layer), CIDv1', 200 * 1024 + 7, { 'cid-version': 1, chunker: 'size-1024' }, { cidVersion: 1, chunkSize: 1024 }],
    ['size-1024, 200 chunks (second layer), CIDv0', 200 * 1024 + 7, { chunker: 'size-1024' }, { cidVersion: 0, chunkSize: 1024 }],
    ['size-1024, exactly 174 chunks (one layer), CIDv1', 174 * 1024, { 'cid-version': 1, chunker: 'size-1024' }, { cidVersion: 1, chunkSize: 1024 }],
    ['size-1024, 174 chunks + 1 byte, CIDv1', 174 * 1024 + 1, { 'cid-version': 1, chunker: 'size-1024' }, { cidVersion: 1, chunkSize: 1024 }],
    // 30277 blocks: hashed only (only-hash), writing them all to disk would take ~10 s
    ['size-64, 174*174+1 chunks (third layer), CIDv1, only-hash', 64 * (174 * 174 + 1), { 'cid-version': 1, chunker: 'size-64', 'only-hash': true }, { cidVersion: 1, chunkSize: 64 }],
    ['CIDv1 with raw-leaves=false', 300000, { 'cid-version': 1, 'raw-leaves': false }, { cidVersion: 1, rawLeaves: false }],
    ['CIDv0 with raw-leaves=true', 300000, { 'raw-leaves': true }, { cidVersion: 0, rawLeaves: true }],
    ['single chunk, size-4096, CIDv0', 4096, { chunker: 'size-4096' }, { cidVersion: 0, chunkSize: 4096 }],
  ];
  for (const [title, size, query, ref] of cases) {
    test(`matches the independent computation: ${title}`, async () => {
      const bytes = testBytes(size, title);
      const want = kuboAddCid(bytes, ref);
      const got = await add(node, bytes, { ...query, pin: false });
      assert.equal(got.Hash, want.cid);
      assert.equal(got.Size, String(want.size));
      if (ref.cidVersion === 1) assert.match(got.Hash, /^baf[ky]/);
    });
  }

  test('add -> cat round trip, offset and length, cat of several args', async () => {
    const bytes = testBytes(700 * 1024 + 3, 'roundtrip');
    const { Hash } = await add(node, bytes, { 'cid-version': 1 });
    const { res, body } = await cat(node, Hash);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-stream-output'), '1');
    assert.equal(res.headers.get('x-content-length'), String(bytes.length));
    assert.ok(body.equals(bytes));
    const part = await cat(node, `/ipfs/${Hash}`, { offset: 262140, length: 10 });
    assert.ok(part.body.equals(bytes.subarray(262140, 262150)));
    const two = await cat(node, [Hash, 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o']);
    assert.ok(two.body.equals(Buffer.concat([bytes, HELLO])));
    // block/get gives blocks that hash to their CID; block/stat gives their size
    const st = await (await rpc(node, 'block/stat', { arg: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o' })).json();
    assert.deepEqual(st, { Key: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', Size: 20 });
    const raw = Buffer.from(await (await rpc(node, 'block/get', { arg: 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4' })).arrayBuffer());
    assert.ok(raw.equals(HELLO));
  });

  test('only-hash computes the CID without storing anything', async () => {
    const bytes = testBytes(5000, 'only-hash');
    const { Hash } = await add(node, bytes, { 'cid-version': 1, 'only-hash': true });
    assert.equal(Hash, kuboAddCid(bytes, { cidVersion: 1 }).cid);
    const { res, body } = await cat(node, Hash, { timeout: '300ms' });
    assert.equal(res.status, 500);
    assert.equal(JSON.parse(body).Message, 'context deadline exceeded');
  });

  test('unknown CID with timeout: Kubo error shape within the timeout', async () => {
    const missing = kuboAddCid(Buffer.from('never added'), { cidVersion: 1 }).cid;
    const t0 = Date.now();
    const { res, body } = await cat(node, missing, { timeout: '1s' });
    const took = Date.now() - t0;
    assert.equal(res.status, 500);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    assert.deepEqual(JSON.parse(body), { Message: 'context deadline exceeded', Code: 0, Type: 'error' });
    assert.ok(took >= 900 && took < 3000, `answered after ${took} ms`);
    for (const cmd of ['block/get', 'block/stat', 'pin/add']) {
      const r = await rpc(node, cmd, { arg: missing, timeout: '200ms' });
      assert.equal(r.status, 500, cmd);
      assert.equal((await r.json()).Type, 'error');
    }
  });

  test('a block that arrives while cat waits is served (online semantics)', async () => {
    const bytes = Buffer.from('arrives late\n');
    const cid = kuboAddCid(bytes, { cidVersion: 1 }).cid;
    const pending = cat(node, cid, { timeout: '5s' });
    await new Promise((r) => setTimeout(r, 300));
    await add(node, bytes, { 'cid-version': 1 });
    const { res, body } = await pending;
    assert.equal(res.status, 200);
    assert.ok(body.equals(bytes));
  });

  // blockstore-fs layout: blocks/<last 2 chars>/B<BASE32 of the multihash>.data
  function blockFile(bytesOfRawLeaf) {
    const mh = Buffer.concat([Buffer.from([0x12, 0x20]), createHash('sha256').update(bytesOfRawLeaf).digest()]);
    const name = 'B' + base32(mh).toUpperCase();
    return path.join(repo, 'blocks', name.slice(-2), `${name}.data`);
  }

  function rawPost(urlPath) {
    return new Promise((resolve, reject) => {
      const r = http.request(`${node.url}${urlPath}`, { method: 'POST', timeout: REQ_TIMEOUT_MS }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks), trailers: res.trailers }));
        res.on('error', reject);
      });
      r.on('timeout', () => r.destroy(new Error('timeout')));
      r.on('error', reject);
      r.end();
    });
  }

  test('a child block missing mid-stream ends cat with an X-Stream-Error trailer', async () => {
    const bytes = testBytes(4 * 1024, 'mid-stream');
    const { Hash } = await add(node, bytes, { 'cid-version': 1, chunker: 'size-1024', pin: false });
    fs.rmSync(blockFile(bytes.subarray(2048, 3072)));
    const t0 = Date.now();
    const r = await rawPost(`/api/v0/cat?arg=${Hash}&timeout=500ms`);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(bytes.subarray(0, 2048)), `got ${r.body.length} bytes`);
    assert.equal(r.trailers['x-stream-error'], 'context deadline exceeded');
    assert.ok(Date.now() - t0 < 3000);
  });

  test('a corrupted block on disk is refused, not served', async () => {
    const bytes = Buffer.from('will be corrupted\n');
    const { Hash } = await add(node, bytes, { 'cid-version': 1, pin: false });
    fs.writeFileSync(blockFile(bytes), 'other bytes\n');
    const { res, body } = await cat(node, Hash, { timeout: '1s' });
    assert.equal(res.status, 500);
    assert.equal(JSON.parse(body).Message, 'block in storage has different hash than requested');
  });

  test('GET and other methods answer 405 like Kubo', async () => {
    for (const cmd of ['add', 'cat', 'block/get', 'block/stat', 'pin/add', 'pin/ls', 'id', 'version']) {
      const res = await fetch(`${node.url}/api/v0/${cmd}?arg=QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o`, { signal: AbortSignal.timeout(REQ_TIMEOUT_MS) });
      assert.equal(res.status, 405, cmd);
      assert.equal(res.headers.get('allow'), 'OPTIONS, POST');
      assert.equal((await res.text()).trim(), '405 - Method Not Allowed');
    }
    const put = await fetch(`${node.url}/api/v0/version`, { method: 'PUT', signal: AbortSignal.timeout(REQ_TIMEOUT_MS) });
    assert.equal(put.status, 405);
    await put.text();
  });

  test('other Kubo error shapes', async () => {
    const noArg = await rpc(node, 'cat');
    assert.equal(noArg.status, 500);
    assert.deepEqual(await noArg.json(), { Message: 'argument "ipfs-path" is required', Code: 0, Type: 'error' });
    const badCid = await rpc(node, 'cat', { arg: 'not-a-cid' });
    assert.equal(badCid.status, 500);
    assert.match((await badCid.json()).Message, /^invalid path "not-a-cid"/);
    const noFile = await rpc(node, 'add');
    assert.equal(noFile.status, 400);
    assert.equal((await noFile.text()).trim(), "file argument 'path' is required");
    const unknown = await rpc(node, 'no/such/command');
    assert.equal(unknown.status, 404);
    await unknown.text();
    const badChunker = await rpc(node, 'add', { chunker: 'size-0' }, { body: (() => { const f = new FormData(); f.append('file', new Blob([HELLO]), 'x'); return f; })() });
    assert.equal(badChunker.status, 500);
    assert.equal((await badChunker.json()).Type, 'error');
    const notPinned = await rpc(node, 'pin/ls', { arg: kuboAddCid(Buffer.from('nope'), { cidVersion: 1 }).cid });
    assert.equal(notPinned.status, 500);
    assert.match((await notPinned.json()).Message, /is not pinned/);
    const foreignOrigin = await rpc(node, 'version', {}, { headers: { Origin: 'http://evil.example' } });
    assert.equal(foreignOrigin.status, 403);
    await foreignOrigin.text();
  });

  test('pin/add, pin/ls (recursive, direct, indirect), pin/rm', async () => {
    const bytes = testBytes(3000, 'pins');
    const { Hash } = await add(node, bytes, { 'cid-version': 1, chunker: 'size-1024', pin: false });
    const notYet = await rpc(node, 'pin/ls', { arg: Hash });
    assert.equal(notYet.status, 500);
    await notYet.text();
    const added = await (await rpc(node, 'pin/add', { arg: Hash })).json();
    assert.deepEqual(added, { Pins: [Hash] });
    const ls = await (await rpc(node, 'pin/ls', { arg: Hash })).json();
    assert.deepEqual(ls, { Keys: { [Hash]: { Type: 'recursive', Name: '' } } });
    const leaf = kuboAddCid(bytes.subarray(0, 1024), { cidVersion: 1 }).cid;
    const ind = await (await rpc(node, 'pin/ls', { arg: leaf })).json();
    assert.deepEqual(ind, { Keys: { [leaf]: { Type: `indirect through ${Hash}`, Name: '' } } });
    const all = await (await rpc(node, 'pin/ls', { type: 'recursive' })).json();
    assert.equal(all.Keys[Hash].Type, 'recursive');
    const direct = await (await rpc(node, 'pin/add', { arg: 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o', recursive: false })).json();
    assert.deepEqual(direct, { Pins: ['QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'] });
    const rm = await (await rpc(node, 'pin/rm', { arg: Hash })).json();
    assert.deepEqual(rm, { Pins: [Hash] });
    const gone = await rpc(node, 'pin/ls', { arg: Hash });
    assert.equal(gone.status, 500);
    await gone.text();
  });

  test('id and version are Kubo-shaped', async () => {
    const id = await (await rpc(node, 'id')).json();
    assert.match(id.ID, /^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/);
    assert.match(id.PublicKey, /^CAESI/);
    assert.ok(Array.isArray(id.Addresses) && typeof id.AgentVersion === 'string');
    const v = await (await rpc(node, 'version')).json();
    assert.deepEqual(Object.keys(v), ['Version', 'Commit', 'Repo', 'System', 'Golang']);
  });
});

// --- persistence, locking, offline mode, shutdown ----------------------------------

describe('ipfs node lifecycle', () => {
  test('pins and blocks survive kill -9 and a restart on the same repo', async () => {
    const repo = tmpRepo('persist');
    let node;
    let node2;
    try {
      node = await startNode(repo);
      const idBefore = (await (await rpc(node, 'id')).json()).ID;
      const bytes = testBytes(600 * 1024, 'persist');
      const a = await add(node, bytes, { 'cid-version': 1 });
      const b = await add(node, HELLO);
      const res = await stopNode(node, 'SIGKILL');
      assert.equal(res.signal, 'SIGKILL');
      node2 = await startNode(repo); // the stale repo.lock of the killed node is taken over
      assert.equal((await (await rpc(node2, 'id')).json()).ID, idBefore);
      const ls = await (await rpc(node2, 'pin/ls', { type: 'recursive' })).json();
      assert.equal(ls.Keys[a.Hash]?.Type, 'recursive');
      assert.equal(ls.Keys[b.Hash]?.Type, 'recursive');
      const back = await cat(node2, a.Hash, { timeout: '5s' });
      assert.equal(back.res.status, 200);
      assert.ok(back.body.equals(bytes));
    } finally {
      await stopNode(node, 'SIGKILL');
      await stopNode(node2);
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });

  test('a second node on a repo in use is refused', async () => {
    const repo = tmpRepo('lock');
    let node;
    try {
      node = await startNode(repo);
      await assert.rejects(startNode(repo), /someone else has the lock/);
    } finally {
      await stopNode(node);
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });

  test('--offline answers at once for blocks it does not hold', async () => {
    const repo = tmpRepo('offline');
    let node;
    try {
      node = await startNode(repo, ['--offline']);
      const missing = kuboAddCid(Buffer.from('absent'), { cidVersion: 1 }).cid;
      const t0 = Date.now();
      const { res, body } = await cat(node, missing);
      assert.ok(Date.now() - t0 < 1000);
      assert.equal(res.status, 500);
      assert.equal(JSON.parse(body).Message, `block was not found locally (offline): ipld: could not find ${missing}`);
    } finally {
      await stopNode(node);
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });

  test('SIGTERM exits 0 promptly, ending requests that wait for blocks', async () => {
    const repo = tmpRepo('sigterm');
    let node;
    try {
      node = await startNode(repo);
      const missing = kuboAddCid(Buffer.from('waiting'), { cidVersion: 1 }).cid;
      const waiting = cat(node, missing, { timeout: '20s' });
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      const res = await stopNode(node, 'SIGTERM');
      assert.equal(res.code, 0);
      assert.ok(Date.now() - t0 < 4000);
      const { res: r } = await waiting.catch((e) => ({ res: { status: `fetch failed: ${e.message}` } }));
      assert.notEqual(r.status, 200);
      assert.ok(!fs.existsSync(path.join(repo, 'repo.lock')));
    } finally {
      await stopNode(node, 'SIGKILL');
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });

  test('refuses a non-loopback --host', async () => {
    const repo = tmpRepo('host');
    try {
      await assert.rejects(startNode(repo, ['--host', '0.0.0.0']), /loopback/);
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });
});

// --- MFS: files/write, files/read, files/stat, files/ls, files/rm ---------------------

async function filesWrite(node, p, bytes, query = {}) {
  const fd = new FormData();
  fd.append('file', new Blob([bytes]), 'data');
  return rpc(node, 'files/write', { arg: p, ...query }, { body: fd });
}

async function filesWriteOk(node, p, bytes, query = { create: true, parents: true, truncate: true }) {
  const res = await filesWrite(node, p, bytes, query);
  const text = await res.text();
  assert.equal(res.status, 200, `files/write ${p}: ${text}`);
  assert.equal(text, '');
  return res;
}

async function filesRead(node, p, query = {}) {
  const res = await rpc(node, 'files/read', { arg: p, ...query });
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

async function filesJson(node, cmd, query) {
  const res = await rpc(node, cmd, query);
  return { status: res.status, json: await res.json() };
}

// a raw POST that also returns the HTTP trailers (fetch does not expose them)
function rawRequest(node, urlPath) {
  return new Promise((resolve, reject) => {
    const r = http.request(`${node.url}${urlPath}`, { method: 'POST', timeout: REQ_TIMEOUT_MS }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), trailers: res.trailers }));
      res.on('error', reject);
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    r.end();
  });
}

const EMPTY_DIR = 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn';
const kuboError = (Message) => ({ Message, Code: 0, Type: 'error' });

describe('MFS (files/*)', () => {
  let node;
  let repo;
  before(async () => {
    repo = tmpRepo('mfs');
    node = await startNode(repo);
  });
  after(async () => {
    try {
      await stopNode(node);
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });

  test("a new repo has Kubo's empty MFS root", async () => {
    const st = await filesJson(node, 'files/stat', { arg: '/' });
    assert.equal(st.status, 200);
    assert.deepEqual(st.json, { Hash: EMPTY_DIR, Size: 0, CumulativeSize: 4, Blocks: 0, Type: 'directory' });
    const ls = await filesJson(node, 'files/ls', {});
    assert.deepEqual(ls.json, { Entries: null });
  });

  test('write (create, parents, truncate) -> read -> stat, with Kubo answer shapes', async () => {
    const head = Buffer.from('{"db":"db1","head":"bafyreiexample","seq":1}\n');
    const w = await filesWriteOk(node, '/chainstore/db1/head', head);
    assert.match(w.headers.get('content-type'), /^application\/json/);
    assert.equal(w.headers.get('x-chunked-output'), '1');

    const { res, body } = await filesRead(node, '/chainstore/db1/head');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-stream-output'), '1');
    assert.ok(body.equals(head));

    // the file is stored as `add` would store it (CIDv0, 256 KiB chunks), so its Hash is add's
    const want = kuboAddCid(head);
    const st = await filesJson(node, 'files/stat', { arg: '/chainstore/db1/head' });
    assert.equal(st.status, 200);
    assert.deepEqual(Object.keys(st.json), ['Hash', 'Size', 'CumulativeSize', 'Blocks', 'Type']);
    assert.deepEqual(st.json, { Hash: want.cid, Size: head.length, CumulativeSize: want.size, Blocks: 0, Type: 'file' });
    // and its blocks are ordinary blocks of the node: cat reads them
    assert.ok((await cat(node, want.cid)).body.equals(head));

    const dir = await filesJson(node, 'files/stat', { arg: '/chainstore/db1' });
    assert.equal(dir.json.Type, 'directory');
    assert.equal(dir.json.Size, 0);
    assert.equal(dir.json.Blocks, 1);
    assert.match(dir.json.Hash, /^Qm/);
    assert.ok(dir.json.CumulativeSize > want.size);
    const viaIpfs = await filesJson(node, 'files/stat', { arg: `/ipfs/${dir.json.Hash}/head` });
    assert.equal(viaIpfs.json.Hash, want.cid);

    const ls = await filesJson(node, 'files/ls', { arg: '/chainstore/db1', long: true });
    assert.deepEqual(ls.json, { Entries: [{ Name: 'head', Type: 0, Size: head.length, Hash: want.cid }] });
    const lsShort = await filesJson(node, 'files/ls', { arg: '/chainstore' });
    assert.deepEqual(lsShort.json, { Entries: [{ Name: 'db1', Type: 0, Size: 0, Hash: '' }] });
    const lsFile = await filesJson(node, 'files/ls', { arg: '/chainstore/db1/head', l: true });
    assert.deepEqual(lsFile.json, { Entries: [{ Name: 'head', Type: 0, Size: head.length, Hash: want.cid }] });

    const local = await filesJson(node, 'files/stat', { arg: '/chainstore', 'with-local': true });
    assert.equal(local.json.WithLocality, true);
    assert.equal(local.json.Local, true);
    assert.equal(local.json.SizeLocal, local.json.CumulativeSize);

    // a multi-block file
    const big = testBytes(600 * 1024, 'mfs-big');
    await filesWriteOk(node, '/chainstore/db1/big', big);
    assert.ok((await filesRead(node, '/chainstore/db1/big')).body.equals(big));
    const bst = await filesJson(node, 'files/stat', { arg: '/chainstore/db1/big' });
    assert.deepEqual(bst.json, { Hash: kuboAddCid(big).cid, Size: big.length, CumulativeSize: kuboAddCid(big).size, Blocks: 3, Type: 'file' });
    const part = await filesRead(node, '/chainstore/db1/big', { offset: 262140, count: 10 });
    assert.ok(part.body.equals(big.subarray(262140, 262150)));
  });

  test('overwrite: truncate=true replaces the file; without it Kubo writes in place', async () => {
    const p = '/ow/file';
    await filesWriteOk(node, p, Buffer.from('hello world\n'));
    await filesWriteOk(node, p, Buffer.from('HEL'), {});
    assert.equal((await filesRead(node, p)).body.toString(), 'HELlo world\n');
    await filesWriteOk(node, p, Buffer.from('fish\n'), { truncate: true });
    assert.equal((await filesRead(node, p)).body.toString(), 'fish\n');
    assert.equal((await filesJson(node, 'files/stat', { arg: p })).json.Hash, kuboAddCid(Buffer.from('fish\n')).cid);
    // offset past the end: the gap is zero-filled (Kubo's sharness "write to offset past end works")
    await filesWriteOk(node, p, Buffer.from('blah\n'), { offset: 8 });
    assert.ok((await filesRead(node, p)).body.equals(Buffer.from('fish\n\0\0\0blah\n')));
    // offset inside the file and count
    await filesWriteOk(node, p, Buffer.from('XYZW'), { o: 1, n: 2 });
    assert.ok((await filesRead(node, p)).body.equals(Buffer.from('fXYh\n\0\0\0blah\n')));
    // an empty write with truncate empties the file
    await filesWriteOk(node, p, Buffer.alloc(0), { truncate: true });
    const { res, body } = await filesRead(node, p);
    assert.equal(res.status, 200);
    assert.equal(body.length, 0);
    assert.equal((await filesJson(node, 'files/stat', { arg: p })).json.Size, 0);
    // short flags: -e -p -t
    await filesWriteOk(node, '/ow/short/flags', Buffer.from('abc'), { e: true, p: true, t: true });
    assert.equal((await filesRead(node, '/ow/short/flags')).body.toString(), 'abc');
  });

  test('cid-version=1: CIDv1 file with raw leaves, CIDv1 directories made by parents', async () => {
    const bytes = Buffer.from('v1 head\n');
    await filesWriteOk(node, '/v1dir/sub/head', bytes, { create: true, parents: true, 'cid-version': 1 });
    const st = await filesJson(node, 'files/stat', { arg: '/v1dir/sub/head' });
    assert.equal(st.json.Hash, kuboAddCid(bytes, { cidVersion: 1 }).cid);
    assert.match(st.json.Hash, /^bafk/);
    assert.match((await filesJson(node, 'files/stat', { arg: '/v1dir/sub' })).json.Hash, /^bafy/);
    assert.match((await filesJson(node, 'files/stat', { arg: '/' })).json.Hash, /^Qm/); // the root keeps its version
  });

  test('parents: without it a missing directory is an error, with it every level is made', async () => {
    const bytes = Buffer.from('deep\n');
    const noParents = await filesWrite(node, '/p1/q/r/file', bytes, { create: true });
    assert.equal(noParents.status, 500);
    assert.deepEqual(await noParents.json(), kuboError('file does not exist'));
    assert.equal((await filesJson(node, 'files/stat', { arg: '/p1' })).status, 500);
    await filesWriteOk(node, '/p1/q/r/file', bytes);
    assert.deepEqual((await filesJson(node, 'files/ls', { arg: '/p1/q' })).json, { Entries: [{ Name: 'r', Type: 0, Size: 0, Hash: '' }] });
    // a second file in the same (now existing) directory
    await filesWriteOk(node, '/p1/q/r/file2', bytes);
    const names = (await filesJson(node, 'files/ls', { arg: '/p1/q/r' })).json.Entries.map((e) => e.Name);
    assert.deepEqual(names, ['file', 'file2']);
    // parents=true on an existing file keeps it a file
    await filesWriteOk(node, '/p1/q/r/file', Buffer.from('again\n'));
    assert.equal((await filesRead(node, '/p1/q/r/file')).body.toString(), 'again\n');
  });

  test("errors are Kubo's (messages, status, order)", async () => {
    const x = Buffer.from('x');
    await filesWriteOk(node, '/err/file', x);
    const cases = [
      // [title, request promise, status, message]
      ['write create=false on a missing file', filesWrite(node, '/err/missing', x), 500, 'file does not exist'],
      ['write create=false, explicit', filesWrite(node, '/err/missing', x, { create: false, parents: true }), 500, 'file does not exist'],
      ['read a missing file', rpc(node, 'files/read', { arg: '/err/missing' }), 500, '/err/missing: file does not exist'],
      ['stat a missing file', rpc(node, 'files/stat', { arg: '/err/missing' }), 500, 'file does not exist'],
      ['ls a missing path', rpc(node, 'files/ls', { arg: '/err/missing' }), 500, 'file does not exist'],
      ['relative path', filesWrite(node, 'err/file', x, { create: true }), 500, 'paths must start with a leading slash'],
      ['relative path (read)', rpc(node, 'files/read', { arg: 'err/file' }), 500, 'paths must start with a leading slash'],
      ['empty path', rpc(node, 'files/stat', { arg: '' }), 500, 'paths must not be empty'],
      ['no path', rpc(node, 'files/read'), 500, 'argument "path" is required'],
      ['write to a directory', filesWrite(node, '/err', x, { create: true }), 500, '/err was not a file'],
      ['write to the root', filesWrite(node, '/', x, { create: true }), 500, '/ was not a file'],
      ['read a directory', rpc(node, 'files/read', { arg: '/err' }), 500, '/err was not a file'],
      ['through a file', filesWrite(node, '/err/file/sub', x, { create: true }), 500, 'cannot access err/file/sub: Not a directory'],
      ['parents through a file', filesWrite(node, '/err/file/sub', x, { create: true, parents: true }), 500, 'file already exists'],
      ['trailing slash on a new file', filesWrite(node, '/err/new/', x, { create: true }), 500, 'file does not exist'],
      ['negative write offset', filesWrite(node, '/err/file', x, { offset: -1 }), 500, 'cannot have negative write offset'],
      ['negative read offset', rpc(node, 'files/read', { arg: '/err/file', offset: -3 }), 500, 'cannot specify negative offset'],
      ['read offset past the end', rpc(node, 'files/read', { arg: '/err/file', offset: 5 }), 500, 'offset was past end of file (5 > 1)'],
      ['negative read count', rpc(node, 'files/read', { arg: '/err/file', count: -1 }), 500, "cannot specify negative 'count'"],
      ['cid-version 2', filesWrite(node, '/err/v2', x, { create: true, 'cid-version': 2 }), 500, 'unknown CID version: 2'],
    ];
    for (const [title, pending, status, message] of cases) {
      const res = await pending;
      assert.equal(res.status, status, title);
      assert.match(res.headers.get('content-type'), /^application\/json/, title);
      assert.deepEqual(await res.json(), kuboError(message), title);
    }
    // request parsing errors are plain text 400s, as for add
    const noData = await rpc(node, 'files/write', { arg: '/err/file' });
    assert.equal(noData.status, 400);
    assert.equal((await noData.text()).trim(), "file argument 'data' is required");
    const badBool = await filesWrite(node, '/err/file', x, { create: 'maybe' });
    assert.equal(badBool.status, 400);
    await badBool.text();
    // none of that changed anything
    assert.equal((await filesRead(node, '/err/file')).body.toString(), 'x');
    assert.deepEqual((await filesJson(node, 'files/ls', { arg: '/err' })).json.Entries.map((e) => e.Name), ['file']);
    // offset == size reads nothing; a 0 count reads nothing
    assert.equal((await filesRead(node, '/err/file', { offset: 1 })).body.length, 0);
    assert.equal((await filesRead(node, '/err/file', { count: 0 })).body.length, 0);
    // GET is refused as for every command
    for (const cmd of ['files/write', 'files/read', 'files/stat', 'files/ls', 'files/rm']) {
      const res = await fetch(`${node.url}/api/v0/${cmd}?arg=/err/file`, { signal: AbortSignal.timeout(REQ_TIMEOUT_MS) });
      assert.equal(res.status, 405, cmd);
      await res.text();
    }
  });

  test("paths are cleaned like Kubo's checkPath ('.', '..', '//')", async () => {
    await filesWriteOk(node, '/clean/a/../b/./c', Buffer.from('c\n'));
    assert.equal((await filesRead(node, '/clean/b/c')).body.toString(), 'c\n');
    assert.equal((await filesRead(node, '//clean//b/c')).body.toString(), 'c\n');
    assert.equal((await filesRead(node, '/../../clean/b/c')).body.toString(), 'c\n'); // '..' stops at '/'
    assert.deepEqual((await filesJson(node, 'files/ls', { arg: '/clean' })).json.Entries.map((e) => e.Name), ['b']);
  });

  test("rm: files, directories (recursive), force, and Kubo's 200-with-trailer failures", async () => {
    await filesWriteOk(node, '/rm/d/f1', Buffer.from('1'));
    await filesWriteOk(node, '/rm/d/f2', Buffer.from('2'));
    await filesWriteOk(node, '/rm/top', Buffer.from('t'));

    const ok = await rpc(node, 'files/rm', { arg: '/rm/d/f1' });
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), '');
    assert.equal((await filesJson(node, 'files/read', { arg: '/rm/d/f1' })).json.Message, '/rm/d/f1: file does not exist');

    // failures: HTTP 200, one JSON string per failed path, then the stream error in the trailer
    const bad = await rawRequest(node, `/api/v0/files/rm?arg=${encodeURIComponent('/rm/d')}&arg=${encodeURIComponent('/rm/none')}&arg=rel&arg=/&arg=/rm/top`);
    assert.equal(bad.status, 200);
    assert.equal(bad.headers['x-chunked-output'], '1');
    assert.deepEqual(bad.body.toString().trim().split('\n').map((l) => JSON.parse(l)), [
      '/rm/d: path is a directory, use -r to remove directories',
      '/rm/none: file does not exist',
      'rel is not a valid path: paths must start with a leading slash',
      '/: cannot delete root',
    ]);
    assert.equal(bad.trailers['x-stream-error'], "can't remove some files");
    // ... and the paths that could be removed were removed
    assert.deepEqual((await filesJson(node, 'files/ls', { arg: '/rm' })).json.Entries.map((e) => e.Name), ['d']);

    const rec = await rawRequest(node, '/api/v0/files/rm?arg=/rm&recursive=true');
    assert.equal(rec.status, 200);
    assert.equal(rec.body.length, 0);
    assert.equal(rec.trailers['x-stream-error'], undefined);
    assert.equal((await filesJson(node, 'files/stat', { arg: '/rm' })).status, 500);

    // force: missing paths are fine, directories go without recursive
    await filesWriteOk(node, '/rmf/d/f', Buffer.from('f'));
    const force = await rawRequest(node, '/api/v0/files/rm?arg=/rmf/d&arg=/rmf/none&arg=/nowhere/x&force=true');
    assert.equal(force.status, 200);
    assert.equal(force.body.length, 0);
    assert.equal(force.trailers['x-stream-error'], undefined);
    assert.deepEqual((await filesJson(node, 'files/ls', { arg: '/rmf' })).json, { Entries: null });
  });

  test('concurrent writes to one directory all land', async () => {
    const n = 25;
    await Promise.all(Array.from({ length: n }, (_, i) => filesWriteOk(node, `/conc/f${String(i).padStart(2, '0')}`, Buffer.from(`content ${i}\n`))));
    const ls = await filesJson(node, 'files/ls', { arg: '/conc', long: true });
    assert.equal(ls.json.Entries.length, n);
    for (let i = 0; i < n; i++) {
      const name = `f${String(i).padStart(2, '0')}`;
      assert.equal(ls.json.Entries[i].Name, name);
      assert.equal((await filesRead(node, `/conc/${name}`)).body.toString(), `content ${i}\n`);
    }
  });

  test("directories are Kubo's basic UnixFS directories (cid_profiles DirBasicCID); larger ones are refused", async () => {
    // Kubo test/cli/cid_profiles_test.go, unixfs-v0-2015: 4096 files named from the
    // ChaCha20 stream of "hamt-unixfs-v0-2015" (30 chars each, AlphabetEasy), each
    // holding "x": exactly at the 256 KiB HAMT threshold, still a basic directory.
    const stream = kuboDeterministic(1 << 20, 'hamt-unixfs-v0-2015');
    const alphabet = [...'abcdefghijklmnopqrstuvwxyz01234567890-_'];
    const x = kuboAddCid(Buffer.from('x'));
    const { CID } = await import('multiformats/cid');
    const entries = (count, nameLen) => {
      const m = new Map();
      for (let i = 0; i < count; i++) {
        const name = [...stream.subarray(i * nameLen, (i + 1) * nameLen)].map((b) => alphabet[b % alphabet.length]).join('');
        m.set(name, { cid: CID.parse(x.cid), tsize: x.size });
      }
      return m;
    };
    const { Mfs } = await import('./server.mjs');
    const put = [];
    const mfs = new Mfs(path.join(os.tmpdir(), 'unused'), { put: async (cid, bytes) => put.push([cid, bytes]) });
    const basic = entries(4096, 30);
    assert.equal(basic.size, 4096);
    const { cid } = await mfs.encodeDir(0, basic);
    assert.equal(cid.toString(), 'QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN');
    assert.equal(put.length, 1);
    // DirHAMT case: 4033 names of 31 chars, one byte over the threshold: Kubo shards, this node refuses
    await assert.rejects(mfs.encodeDir(0, entries(4033, 31)), /HAMT/);
  });
});

describe('MFS lifecycle', () => {
  test('MFS survives kill -9 and a restart; rm -r then wipes it (also across kill -9)', async () => {
    const repo = tmpRepo('mfs-persist');
    let node;
    let node2;
    let node3;
    try {
      node = await startNode(repo);
      const head1 = Buffer.from('head of db1\n');
      const head2 = testBytes(300 * 1024, 'mfs-persist');
      await filesWriteOk(node, '/chainstore/db1/head', Buffer.from('old head\n'));
      await filesWriteOk(node, '/chainstore/db1/head', head1);
      await filesWriteOk(node, '/chainstore/db2/head', head2);
      const rootBefore = (await filesJson(node, 'files/stat', { arg: '/' })).json.Hash;
      assert.equal((await stopNode(node, 'SIGKILL')).signal, 'SIGKILL');

      // a write cut short by a crash leaves a temp file next to the root record
      fs.writeFileSync(path.join(repo, 'mfs', `root.tmp-99999-deadbeef`), 'QmGarbage');
      node2 = await startNode(repo);
      assert.equal((await filesJson(node2, 'files/stat', { arg: '/' })).json.Hash, rootBefore);
      assert.ok((await filesRead(node2, '/chainstore/db1/head')).body.equals(head1));
      assert.ok((await filesRead(node2, '/chainstore/db2/head')).body.equals(head2));
      assert.deepEqual(fs.readdirSync(path.join(repo, 'mfs')), ['root']);

      // the test's way to simulate a wiped node
      const rm = await rawRequest(node2, '/api/v0/files/rm?arg=/chainstore&recursive=true');
      assert.equal(rm.status, 200);
      assert.equal(rm.trailers['x-stream-error'], undefined);
      assert.deepEqual((await filesJson(node2, 'files/stat', { arg: '/' })).json.Hash, EMPTY_DIR);
      await stopNode(node2, 'SIGKILL');
      node3 = await startNode(repo);
      const gone = await filesJson(node3, 'files/read', { arg: '/chainstore/db1/head' });
      assert.equal(gone.status, 500);
      assert.deepEqual(gone.json, kuboError('/chainstore/db1/head: file does not exist'));
      // and writing again works from the empty root
      await filesWriteOk(node3, '/chainstore/db1/head', head1);
      assert.ok((await filesRead(node3, '/chainstore/db1/head')).body.equals(head1));
    } finally {
      await stopNode(node, 'SIGKILL');
      await stopNode(node2, 'SIGKILL');
      await stopNode(node3);
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });
});
