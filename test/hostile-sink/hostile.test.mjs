// Tests for the hostile HTTP sink (test/hostile-sink/server.mjs).
// Run: node --test test/hostile-sink/
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { kuboAddCid } from '../ipfs-node/reference-cid.mjs';

const SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'server.mjs');
const START_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 5000;
const HELLO = Buffer.from('hello world\n');
const HELLO_V1 = 'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4';

function startSink(mode, extra = []) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SERVER, '--port', '0', '--mode', mode, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`sink not ready within ${START_TIMEOUT_MS} ms: ${err}`));
    }, START_TIMEOUT_MS);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /ready (\d+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: `http://127.0.0.1:${m[1]}` });
      }
    });
    proc.stderr.on('data', (d) => {
      err += d;
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sink exited early (${code}): ${err}`));
    });
  });
}

function stopSink(sink) {
  return new Promise((resolve) => {
    if (!sink || sink.proc.exitCode !== null || sink.proc.signalCode !== null) return resolve(sink?.proc.exitCode);
    const timer = setTimeout(() => sink.proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
    sink.proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    sink.proc.kill('SIGTERM');
  });
}

const req = (sink, p, init = {}, ms = 3000) => fetch(`${sink.url}${p}`, { method: 'POST', signal: AbortSignal.timeout(ms), ...init });

function addBody(bytes = HELLO, name = 'hello.txt') {
  const fd = new FormData();
  fd.append('file', new Blob([bytes]), name);
  return fd;
}

async function setMode(sink, m) {
  const r = await req(sink, `/__mode?m=${m}`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { mode: m });
}

async function stats(sink) {
  const r = await fetch(`${sink.url}/__stats`, { signal: AbortSignal.timeout(3000) });
  return r.json();
}

async function waitFor(pred, ms = 3000) {
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end && i < 1000; i++) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

describe('hostile sink', () => {
  let sink;
  before(async () => {
    sink = await startSink('garbage-json');
  });
  after(async () => {
    const code = await stopSink(sink);
    assert.equal(code, 0);
  });

  test('garbage-json: 200 with a body that is not JSON', async () => {
    await setMode(sink, 'garbage-json');
    const r = await req(sink, '/api/v0/add', { body: addBody() });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /application\/json/);
    await assert.rejects(r.json(), SyntaxError);
  });

  test('http500: Kubo-shaped error with status 500', async () => {
    await setMode(sink, 'http500');
    const r = await req(sink, '/api/v0/cat?arg=x');
    assert.equal(r.status, 500);
    assert.equal((await r.json()).Type, 'error');
  });

  test('http429: status 429 with Retry-After: 2', async () => {
    await setMode(sink, 'http429');
    const r = await req(sink, '/api/v0/add', { body: addBody() });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '2');
    await r.text();
  });

  test('hang: never answers; the socket is released when the client gives up', async () => {
    await setMode(sink, 'hang');
    const t0 = Date.now();
    await assert.rejects(req(sink, '/api/v0/add', { body: addBody() }, 500), (e) => e.name === 'TimeoutError');
    assert.ok(Date.now() - t0 < 2000);
    // several clients at once, all giving up
    const many = Array.from({ length: 10 }, () => req(sink, '/api/v0/cat?arg=x', {}, 400).catch((e) => e.name));
    assert.ok(await waitFor(async () => (await stats(sink)).hung >= 1));
    assert.deepEqual(await Promise.all(many), Array(10).fill('TimeoutError'));
    assert.ok(await waitFor(async () => (await stats(sink)).hung === 0), 'hung sockets were not released');
  });

  test('cut-body: Content-Length 1000, 10 bytes, then the connection closes', async () => {
    await setMode(sink, 'cut-body');
    const r = await req(sink, '/api/v0/add', { body: addBody() });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-length'), '1000');
    await assert.rejects(r.arrayBuffer());
  });

  test('wrong-cid: well-formed add answer with a different valid CID', async () => {
    await setMode(sink, 'wrong-cid');
    const r = await req(sink, '/api/v0/add?cid-version=1', { body: addBody() });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.deepEqual(Object.keys(j), ['Name', 'Hash', 'Size']);
    assert.equal(j.Name, 'hello.txt');
    assert.equal(typeof j.Size, 'string');
    assert.match(j.Hash, /^bafk[a-z2-7]{55}$/);
    assert.notEqual(j.Hash, HELLO_V1);
    const v0 = await (await req(sink, '/api/v0/add', { body: addBody() })).json();
    assert.match(v0.Hash, /^Qm[1-9A-HJ-NP-Za-km-z]{44}$/);
    assert.notEqual(v0.Hash, 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o');
    const c = await req(sink, `/api/v0/cat?arg=${HELLO_V1}`);
    assert.notDeepEqual(Buffer.from(await c.arrayBuffer()), HELLO);
  });

  test('slow: correct Kubo answers, 5 s late', async () => {
    await setMode(sink, 'slow');
    const t0 = Date.now();
    const r = await req(sink, '/api/v0/add?cid-version=1', { body: addBody() }, 10000);
    const took = Date.now() - t0;
    assert.ok(took >= 4900 && took < 8000, `answered after ${took} ms`);
    assert.deepEqual(await r.json(), { Name: 'hello.txt', Hash: HELLO_V1, Size: '12' });
    // a client that gives up earlier just times out
    await assert.rejects(req(sink, `/api/v0/cat?arg=${HELLO_V1}`, {}, 500), (e) => e.name === 'TimeoutError');
  });

  test('/__stats counts requests per path; /__reset zeroes them', async () => {
    await req(sink, '/__reset').then((r) => r.json());
    await setMode(sink, 'http500');
    for (let i = 0; i < 3; i++) await (await req(sink, '/api/v0/add', { body: addBody() })).text();
    await (await req(sink, '/api/v0/cat?arg=x')).text();
    const s = await stats(sink);
    assert.equal(s.mode, 'http500');
    assert.equal(s.total, 4);
    assert.deepEqual(s.paths, { '/api/v0/add': 3, '/api/v0/cat': 1 });
  });

  test('unknown mode is refused and the mode stays', async () => {
    await setMode(sink, 'http429');
    const r = await req(sink, '/__mode?m=bogus');
    assert.equal(r.status, 400);
    await r.json();
    assert.equal((await stats(sink)).mode, 'http429');
  });
});

describe('hostile sink limits', () => {
  test('hang keeps at most --max-hung sockets, dropping the oldest', async () => {
    let sink;
    try {
      sink = await startSink('hang', ['--max-hung', '3']);
      const outcomes = [];
      for (let i = 0; i < 5; i++) {
        outcomes.push(req(sink, `/api/v0/cat?arg=${i}`, {}, 1500).then(() => 'answered', (e) => e.name));
        // let each request be registered before the next, so "oldest" is well defined
        await waitFor(async () => (await stats(sink)).total === i + 1);
      }
      const s = await stats(sink);
      assert.equal(s.hung, 3);
      assert.equal(s.hungDropped, 2);
      const results = await Promise.all(outcomes);
      assert.deepEqual(results.slice(0, 2).map((x) => x !== 'TimeoutError'), [true, true]); // dropped: connection error
      assert.deepEqual(results.slice(2), ['TimeoutError', 'TimeoutError', 'TimeoutError']);
    } finally {
      await stopSink(sink);
    }
  });

  test('slow with a shorter --delay-ms remembers what was added for cat', async () => {
    let sink;
    try {
      sink = await startSink('slow', ['--delay-ms', '200']);
      const bytes = Buffer.from('x'.repeat(300000));
      const j = await (await req(sink, '/api/v0/add?cid-version=1', { body: addBody(bytes) })).json();
      assert.equal(j.Hash, kuboAddCid(bytes, { cidVersion: 1 }).cid);
      const c = await req(sink, `/api/v0/cat?arg=${j.Hash}`);
      assert.ok(Buffer.from(await c.arrayBuffer()).equals(bytes));
    } finally {
      await stopSink(sink);
    }
  });
});
