#!/usr/bin/env node
// Hostile HTTP peer for chainstore's worker robustness tests. It sits where the
// Kubo RPC API would be and misbehaves in one chosen way.
//
// Usage: node test/hostile-sink/server.mjs --port P --mode MODE [--host 127.0.0.1]
//          [--delay-ms 5000] [--max-hung 256] [--hang-max-ms 600000] [--retry-after 2]
// Prints "ready <port>" on stdout once listening (--port 0 picks a free port).
//
// Modes (every path except the /__ control paths behaves per the mode):
//   garbage-json  200, Content-Type application/json, body that is not JSON
//   http500       500 with a Kubo-shaped error object
//   http429       429 with Retry-After: 2 and a Kubo-shaped error object
//   hang          reads the request, never answers; the socket stays open until the
//                 client gives up (bounded: --max-hung sockets at once, oldest dropped
//                 first; each at most --hang-max-ms)
//   cut-body      headers with Content-Length: 1000, then 10 bytes, then the socket closes
//   wrong-cid     /api/v0/add answers well-formed Kubo JSON whose Hash is a valid CID of
//                 different bytes; cat/block/get answer bytes that are not the content
//   slow          correct Kubo-shaped answers after --delay-ms (5 s): add gives the true
//                 CID (computed like Kubo), cat gives back what was added (bounded memory)
// Control:
//   GET  /__stats          {"mode","total","paths":{path:count},"hung","hungDropped","cut"}
//   POST /__mode?m=MODE    switch mode at runtime (400 for an unknown mode)
//   POST /__reset          zero the counters
import http from 'node:http';
import { kuboAddCid } from '../ipfs-node/reference-cid.mjs';

const MODES = ['garbage-json', 'http500', 'http429', 'hang', 'cut-body', 'wrong-cid', 'slow'];
const MAX_BODY = 64 * 1024 * 1024; // request bodies above this are not kept (only counted)
const SLOW_STORE_BYTES = 64 * 1024 * 1024; // what slow mode remembers for cat, oldest evicted

function parseArgs(argv) {
  const o = { port: null, mode: null, host: '127.0.0.1', delayMs: 5000, maxHung: 256, hangMaxMs: 600000, retryAfter: '2' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`missing value for ${a}`);
      return argv[++i];
    };
    switch (a) {
      case '--port': o.port = Number(val()); break;
      case '--mode': o.mode = val(); break;
      case '--host': o.host = val(); break;
      case '--delay-ms': o.delayMs = Number(val()); break;
      case '--max-hung': o.maxHung = Number(val()); break;
      case '--hang-max-ms': o.hangMaxMs = Number(val()); break;
      case '--retry-after': o.retryAfter = val(); break;
      default: die(`unknown argument ${a}`);
    }
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) die('--port P is required (0 picks a free port)');
  if (!MODES.includes(o.mode)) die(`--mode must be one of ${MODES.join(', ')}`);
  if (!(o.host === 'localhost' || o.host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(o.host))) {
    die(`--host must be a loopback address, not ${o.host}`);
  }
  if (!(o.delayMs >= 0) || !(o.maxHung >= 1) || !(o.hangMaxMs >= 1)) die('bad --delay-ms / --max-hung / --hang-max-ms');
  return o;
}

function die(msg) {
  process.stderr.write(`error: ${msg}\n`);
  process.stderr.write('usage: node server.mjs --port P --mode MODE [--host 127.0.0.1] [--delay-ms N] [--max-hung N] [--hang-max-ms N] [--retry-after S]\n');
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
let mode = opts.mode;
let counts = new Map();
let total = 0;
let cut = 0;
let hungDropped = 0;
const hung = new Map(); // socket -> timer, insertion order = oldest first
const slowStore = new Map(); // cid -> Buffer (slow mode), bounded by SLOW_STORE_BYTES
let slowStoreBytes = 0;

function json(res, status, value, headers = {}) {
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function kuboError(res, status, message, code, headers = {}) {
  json(res, status, { Message: message, Code: code, Type: 'error' }, headers);
}

// Read (and bound) the request body; resolves with the kept bytes.
function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size <= MAX_BODY ? Buffer.concat(chunks) : null));
    req.on('error', () => resolve(null));
    req.on('close', () => resolve(size <= MAX_BODY ? Buffer.concat(chunks) : null));
  });
}

// The first file part of a multipart/form-data body (enough for Kubo's add).
function firstFilePart(body, contentType) {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
  if (!body || !m) return null;
  const delim = Buffer.from(`--${m[1] ?? m[2]}`);
  const start = body.indexOf(delim);
  if (start < 0) return null;
  const headerEnd = body.indexOf('\r\n\r\n', start);
  if (headerEnd < 0) return null;
  const headers = body.subarray(start, headerEnd).toString('latin1');
  const end = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), headerEnd + 4);
  if (end < 0) return null;
  const fn = /filename="([^"]*)"/i.exec(headers);
  let name = fn ? fn[1] : '';
  try {
    name = decodeURIComponent(name);
  } catch {
    // keep as sent
  }
  return { name, data: body.subarray(headerEnd + 4, end) };
}

function addParams(url) {
  const q = url.searchParams;
  const cidVersion = q.get('cid-version') === '1' ? 1 : 0;
  const rl = q.get('raw-leaves');
  const rawLeaves = rl === null ? cidVersion === 1 : rl === '' || rl === 'true' || rl === '1';
  const m = /^size-(\d+)$/.exec(q.get('chunker') ?? '');
  const chunkSize = m && Number(m[1]) > 0 ? Number(m[1]) : 262144;
  return { cidVersion, rawLeaves, chunkSize };
}

function remember(cid, data) {
  if (data.length > SLOW_STORE_BYTES) return;
  if (slowStore.has(cid)) return;
  slowStore.set(cid, Buffer.from(data));
  slowStoreBytes += data.length;
  for (const [k, v] of slowStore) {
    if (slowStoreBytes <= SLOW_STORE_BYTES) break;
    slowStore.delete(k);
    slowStoreBytes -= v.length;
  }
}

function argOf(url) {
  const a = url.searchParams.get('arg') ?? '';
  return a.replace(/^\/ipfs\//, '').split('/')[0];
}

// --- the modes ------------------------------------------------------------------

// Drain and discard a request body (hang and error modes keep nothing per request).
function drain(req) {
  return new Promise((resolve) => {
    req.on('end', resolve);
    req.on('error', resolve);
    req.on('close', resolve);
    req.resume();
  });
}

async function hostile(req, res, url) {
  let body = null;
  if (mode === 'wrong-cid' || mode === 'slow') body = await readBody(req);
  else if (mode === 'hang') req.resume();
  else await drain(req);
  if (res.destroyed) return;
  switch (mode) {
    case 'garbage-json': {
      const junk = '{"Name":"blob","Hash":"bafk<<<this is not json>>>\u0000,,}';
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(junk) });
      res.end(junk);
      return;
    }
    case 'http500':
      kuboError(res, 500, 'hostile-sink: internal error', 0);
      return;
    case 'http429':
      kuboError(res, 429, 'hostile-sink: too many requests', 3, { 'Retry-After': opts.retryAfter });
      return;
    case 'hang': {
      const sock = req.socket;
      if (hung.has(sock)) return;
      sock.setTimeout(0);
      const timer = setTimeout(() => sock.destroy(), opts.hangMaxMs);
      timer.unref();
      hung.set(sock, timer);
      sock.once('close', () => {
        clearTimeout(hung.get(sock));
        hung.delete(sock);
      });
      // bounded: beyond --max-hung, the oldest hung connection is dropped
      while (hung.size > opts.maxHung) {
        const [oldest] = hung.keys();
        clearTimeout(hung.get(oldest));
        hung.delete(oldest);
        hungDropped++;
        oldest.destroy();
      }
      return;
    }
    case 'cut-body': {
      cut++;
      const sock = req.socket;
      const partial = '{"Name":"c'; // 10 bytes of the promised 1000
      sock.end(
        'HTTP/1.1 200 OK\r\n' +
        'Content-Type: application/json\r\n' +
        'Content-Length: 1000\r\n' +
        'Connection: close\r\n\r\n' +
        partial,
      );
      return;
    }
    case 'wrong-cid':
      return wrongCid(req, res, url, body);
    case 'slow':
      await new Promise((r) => setTimeout(r, opts.delayMs));
      if (res.destroyed) return;
      return correct(req, res, url, body);
    default:
      kuboError(res, 500, `hostile-sink: unknown mode ${mode}`, 0);
  }
}

function wrongCid(req, res, url, body) {
  const p = url.pathname;
  if (p === '/api/v0/add') {
    const part = firstFilePart(body, req.headers['content-type']) ?? { name: '', data: Buffer.alloc(0) };
    const params = addParams(url);
    // a valid CID made the same way, of other bytes: well formed, but not this content's
    const other = kuboAddCid(Buffer.concat([part.data, Buffer.from('\nwrong-cid')]), params);
    json(res, 200, { Name: part.name || other.cid, Hash: other.cid, Size: String(part.data.length) });
    return;
  }
  if (p === '/api/v0/cat' || p === '/api/v0/block/get') {
    const b = 'this is not the content you asked for\n';
    res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Stream-Output': '1' });
    res.end(b);
    return;
  }
  if (p === '/api/v0/pin/add') {
    json(res, 200, { Pins: [kuboAddCid(Buffer.from(`${argOf(url)}:wrong`), { cidVersion: 1 }).cid] });
    return;
  }
  return correct(req, res, url, body);
}

// Kubo-shaped, correct answers (slow mode, and the rest of wrong-cid)
function correct(req, res, url, body) {
  const p = url.pathname;
  switch (p) {
    case '/api/v0/add': {
      const part = firstFilePart(body, req.headers['content-type']);
      if (!part) {
        res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end("file argument 'path' is required\n");
        return;
      }
      const r = kuboAddCid(part.data, addParams(url));
      if (url.searchParams.get('only-hash') !== 'true') remember(r.cid, part.data);
      json(res, 200, { Name: part.name || r.cid, Hash: r.cid, Size: String(r.size) });
      return;
    }
    case '/api/v0/cat': {
      const data = slowStore.get(argOf(url));
      if (!data) {
        kuboError(res, 500, 'context deadline exceeded', 0);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Stream-Output': '1', 'X-Content-Length': String(data.length) });
      res.end(data);
      return;
    }
    case '/api/v0/pin/add':
      json(res, 200, { Pins: [argOf(url)] });
      return;
    case '/api/v0/pin/ls':
      json(res, 200, { Keys: { [argOf(url)]: { Type: 'recursive', Name: '' } } });
      return;
    case '/api/v0/block/stat': {
      const data = slowStore.get(argOf(url));
      if (!data) {
        kuboError(res, 500, 'context deadline exceeded', 0);
        return;
      }
      json(res, 200, { Key: argOf(url), Size: data.length });
      return;
    }
    case '/api/v0/id':
      json(res, 200, { ID: '12D3KooWHostileSinkHostileSinkHostileSinkHostile', PublicKey: '', Addresses: [], AgentVersion: 'hostile-sink', Protocols: [] });
      return;
    case '/api/v0/version':
      json(res, 200, { Version: '0.36.0-hostile-sink', Commit: '', Repo: '16', System: 'amd64/linux', Golang: 'none' });
      return;
    default:
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('404 page not found\n');
  }
}

// --- server ----------------------------------------------------------------------

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  const p = url.pathname;
  if (p === '/__stats') {
    req.resume();
    json(res, 200, { mode, total, paths: Object.fromEntries(counts), hung: hung.size, hungDropped, cut });
    return;
  }
  if (p === '/__mode') {
    req.resume();
    if (req.method !== 'POST') {
      json(res, req.method === 'GET' ? 200 : 405, { mode });
      return;
    }
    const m = url.searchParams.get('m');
    if (!MODES.includes(m)) {
      json(res, 400, { error: `unknown mode ${m}`, modes: MODES });
      return;
    }
    mode = m;
    json(res, 200, { mode });
    return;
  }
  if (p === '/__reset') {
    req.resume();
    counts = new Map();
    total = 0;
    cut = 0;
    hungDropped = 0;
    json(res, 200, { reset: true });
    return;
  }
  total++;
  counts.set(p, (counts.get(p) ?? 0) + 1);
  hostile(req, res, url).catch((e) => {
    if (!res.headersSent && !res.destroyed) kuboError(res, 500, `hostile-sink: ${e.message}`, 0);
  });
});
server.keepAliveTimeout = 5000;
server.requestTimeout = 0; // hung requests are bounded by --hang-max-ms and --max-hung instead

server.listen(opts.port, opts.host, () => {
  process.stdout.write(`ready ${server.address().port}\n`);
});
server.on('error', (e) => {
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  for (const [sock, timer] of hung) {
    clearTimeout(timer);
    sock.destroy();
  }
  hung.clear();
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
