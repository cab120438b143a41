#!/usr/bin/env node
// chainstore test IPFS node: a small, real IPFS node that speaks a subset of the
// Kubo RPC API (/api/v0/...) over HTTP on 127.0.0.1.
//
// Content is chunked and encoded by ipfs-unixfs-importer (the UnixFS importer that
// Helia uses), stored in blockstore-fs (Helia's on-disk blockstore), and read back
// through ipfs-unixfs-exporter. Import parameters default to Kubo's, so the CIDs are
// Kubo's. Pins are kept as one file per pin under <repo>/pins, written atomically.
// MFS (files/write, read, stat, ls, rm) is a tree of UnixFS directories in the same
// blockstore whose root CID is kept in <repo>/mfs/root, also written atomically.
// There is no libp2p: the node never talks to other peers. See README.md.
//
// Usage: node test/ipfs-node/server.mjs --port P --repo DIR [--host 127.0.0.1]
//          [--offline] [--max-wait-ms N] [--max-body-bytes N] [--verbose]
// Prints "ready <port>" on stdout once listening. SIGTERM/SIGINT: clean exit 0.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

import * as dagPb from '@ipld/dag-pb';
import { FsBlockstore } from 'blockstore-fs';
import { exporter } from 'ipfs-unixfs-exporter';
import { importer } from 'ipfs-unixfs-importer';
import { fixedSize } from 'ipfs-unixfs-importer/chunker';
import { balanced } from 'ipfs-unixfs-importer/layout';
import { base32 } from 'multiformats/bases/base32';
import { base36 } from 'multiformats/bases/base36';
import { base58btc } from 'multiformats/bases/base58';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { identity } from 'multiformats/hashes/identity';
import { sha256 } from 'multiformats/hashes/sha2';

const NODE_VERSION = '0.1.0';
// What /api/v0/version reports. A Kubo-shaped version string that says what it is.
const REPORTED_VERSION = '0.36.0-chainstore-testnode';

// Kubo defaults (config.DefaultUnixFSChunker, helpers.DefaultLinksPerBlock, ...)
const DEFAULT_CHUNK_SIZE = 262144;
const DEFAULT_MAX_LINKS = 174;
const MAX_CHUNK_SIZE = 2 * 1024 * 1024 - 256; // Kubo: 2 MiB minus 256 bytes framing budget
const SOFT_BLOCK_LIMIT = 2 * 1024 * 1024; // Kubo block put limit without allow-big-block
const POLL_MS = 50; // how often a wait for a missing block looks again

// ---------------------------------------------------------------------------
// command line

function parseArgs(argv) {
  const opts = {
    port: null,
    repo: null,
    host: '127.0.0.1',
    offline: false,
    maxWaitMs: 30000,
    maxBodyBytes: 256 * 1024 * 1024,
    verbose: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`missing value for ${a}`);
      return argv[++i];
    };
    switch (a) {
      case '--port': opts.port = Number(val()); break;
      case '--repo': opts.repo = val(); break;
      case '--host': opts.host = val(); break;
      case '--offline': opts.offline = true; break;
      case '--max-wait-ms': opts.maxWaitMs = Number(val()); break;
      case '--max-body-bytes': opts.maxBodyBytes = Number(val()); break;
      case '--verbose': opts.verbose = true; break;
      case '-h': case '--help': usage(null); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('--port P is required (0 picks a free port)');
  if (!opts.repo) usage('--repo DIR is required');
  if (!isLoopback(opts.host)) usage(`--host must be a loopback address, not ${opts.host}`);
  if (!(opts.maxWaitMs >= 0)) usage('--max-wait-ms must be >= 0');
  if (!(opts.maxBodyBytes > 0)) usage('--max-body-bytes must be > 0');
  return opts;
}

function usage(msg) {
  if (msg) process.stderr.write(`error: ${msg}\n`);
  process.stderr.write('usage: node server.mjs --port P --repo DIR [--host 127.0.0.1] [--offline] [--max-wait-ms N] [--max-body-bytes N] [--verbose]\n');
  process.exit(msg ? 2 : 0);
}

function isLoopback(host) {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

// ---------------------------------------------------------------------------
// errors: Kubo's go-ipfs-cmds error object {"Message","Code","Type":"error"}

class ApiError extends Error {
  constructor(message, { code = 0, status } = {}) {
    super(message);
    this.code = code; // 0 = ErrNormal (HTTP 500), 1 = ErrClient (HTTP 400)
    this.status = status ?? (code === 1 ? 400 : 500);
  }
}

// An error Kubo answers before running the command (request parsing): plain text.
class TextError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const DEADLINE = 'context deadline exceeded';
const CANCELED = 'context canceled';

// ---------------------------------------------------------------------------
// repo: <repo>/blocks (blockstore-fs), <repo>/pins (one file per pin),
// <repo>/config (identity), <repo>/repo.lock (pid of the running node)

async function fsyncDir(dir) {
  let fh;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  } finally {
    await fh?.close();
  }
}

async function writeFileAtomic(file, data) {
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const fh = await fsp.open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

function processLooksAlive(pid) {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === 'EPERM';
  }
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('server.mjs');
  } catch {
    return true;
  }
}

function acquireLock(repo) {
  const lock = path.join(repo, 'repo.lock');
  try {
    const pid = Number(fs.readFileSync(lock, 'utf8').trim());
    if (processLooksAlive(pid)) {
      throw new Error(`lock ${lock}: someone else has the lock (pid ${pid})`);
    }
  } catch (e) {
    if (e.code !== 'ENOENT') {
      if (e.message.startsWith('lock ')) throw e;
    }
  }
  fs.writeFileSync(lock, `${process.pid}\n`);
  return lock;
}

function releaseLock(lock) {
  try {
    const pid = Number(fs.readFileSync(lock, 'utf8').trim());
    if (pid === process.pid) fs.unlinkSync(lock);
  } catch {
    // already gone
  }
}

// libp2p identity: Ed25519 key, peer ID = identity multihash of the protobuf public key
function loadOrCreateIdentity(repo) {
  const file = path.join(repo, 'config');
  try {
    const cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (cfg?.Identity?.PeerID && cfg?.Identity?.PrivKey) return identityFromPrivKey(cfg.Identity.PrivKey);
  } catch (e) {
    if (e.code !== 'ENOENT') throw new Error(`cannot read ${file}: ${e.message}`);
  }
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d, 'base64url');
  const pub = Buffer.from(jwk.x, 'base64url');
  // libp2p PrivateKey protobuf: Type=Ed25519(1), Data=seed||pub (64 bytes)
  const privProto = Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x40]), seed, pub]);
  const ident = identityFromPrivKey(privProto.toString('base64'));
  const cfg = {
    Identity: { PeerID: ident.id, PrivKey: privProto.toString('base64') },
    Note: 'chainstore test IPFS node repo (not a Kubo repo)',
  };
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n');
  fs.renameSync(tmp, file);
  return ident;
}

function identityFromPrivKey(b64) {
  const proto = Buffer.from(b64, 'base64');
  if (proto.length !== 68 || proto[0] !== 0x08 || proto[1] !== 0x01) throw new Error('config: unsupported private key');
  const pub = proto.subarray(36, 68);
  const pubProto = Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x20]), pub]);
  const peerId = base58btc.baseEncode(Buffer.concat([Buffer.from([0x00, pubProto.length]), pubProto]));
  return { id: peerId, publicKey: pubProto.toString('base64') };
}

// ---------------------------------------------------------------------------
// block access with Kubo's semantics for blocks the node does not hold:
// online (default) it waits for them until the request's deadline; --offline
// answers at once with Kubo's offline error.

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortMessage(signal) {
  const r = signal?.reason;
  if (r instanceof ApiError) return r;
  return new ApiError(r?.message || DEADLINE);
}

class Blocks {
  constructor(store, { offline }) {
    this.store = store;
    this.offline = offline;
  }

  async has(cid) {
    if (cid.multihash.code === identity.code) return true;
    return this.store.has(cid);
  }

  async tryRead(cid) {
    if (cid.multihash.code === identity.code) return cid.multihash.digest;
    let chunks;
    try {
      chunks = [];
      for await (const c of this.store.get(cid)) chunks.push(c);
    } catch (e) {
      if (e?.name === 'NotFoundError') return null;
      throw e;
    }
    const bytes = Buffer.concat(chunks);
    if (cid.multihash.code === sha256.code) {
      const d = await sha256.digest(bytes);
      if (!Buffer.from(d.digest).equals(Buffer.from(cid.multihash.digest))) {
        throw new ApiError('block in storage has different hash than requested');
      }
    }
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  // Read a block, waiting for it (online) until `signal` aborts.
  async read(cid, { signal } = {}) {
    for (;;) {
      if (signal?.aborted) throw abortMessage(signal);
      const bytes = await this.tryRead(cid);
      if (bytes) return bytes;
      if (this.offline || !signal) {
        throw new ApiError(`block was not found locally (offline): ipld: could not find ${cid}`);
      }
      try {
        await sleep(POLL_MS, signal);
      } catch {
        throw abortMessage(signal);
      }
    }
  }

  async put(cid, bytes) {
    await this.store.put(cid, bytes);
    return cid;
  }

  // The interface-blockstore view the exporter reads through.
  view(signal) {
    return {
      get: async function* (cid) {
        yield await this.read(cid, { signal });
      }.bind(this),
      has: (cid) => this.has(cid),
      put: (cid, bytes) => this.put(cid, bytes),
    };
  }

  // Links of a block (dag-pb only; raw and identity have none).
  static links(cid, bytes) {
    if (cid.code !== dagPb.code) return [];
    return dagPb.decode(bytes).Links.map((l) => l.Hash);
  }

  // Visit every block of a DAG once (depth first, bounded by the DAG itself).
  async walk(root, { signal, wait = true, onBlock } = {}) {
    const seen = new Set();
    const stack = [root];
    while (stack.length > 0) {
      const cid = stack.pop();
      const key = cid.multihash.bytes.toString();
      if (seen.has(key)) continue;
      seen.add(key);
      const bytes = wait ? await this.read(cid, { signal }) : await this.tryRead(cid);
      if (!bytes) continue;
      onBlock?.(cid, bytes);
      const links = Blocks.links(cid, bytes);
      for (let i = links.length - 1; i >= 0; i--) stack.push(links[i]);
    }
    return seen;
  }
}

// ---------------------------------------------------------------------------
// pins: <repo>/pins/<cid>.json = {"Cid","Type":"recursive"|"direct","Name"}

class Pins {
  constructor(dir) {
    this.dir = dir;
    this.map = new Map(); // cid string (as pinned) -> {cid, type, name}
  }

  static fileName(cid) {
    // one file per pin, keyed by the CIDv1 form so v0/v1 of the same node share a pin
    return `${toV1(cid).toString(base32)}.json`;
  }

  async load() {
    await fsp.mkdir(this.dir, { recursive: true });
    for (const f of await fsp.readdir(this.dir)) {
      const full = path.join(this.dir, f);
      if (f.includes('.tmp-')) {
        await fsp.rm(full, { force: true }); // a write cut short by a crash
        continue;
      }
      if (!f.endsWith('.json')) continue;
      try {
        const p = JSON.parse(await fsp.readFile(full, 'utf8'));
        const cid = CID.parse(p.Cid);
        this.map.set(Pins.fileName(cid), { cid, type: p.Type, name: p.Name ?? '' });
      } catch (e) {
        process.stderr.write(`warning: ignoring unreadable pin file ${full}: ${e.message}\n`);
      }
    }
  }

  get(cid) {
    return this.map.get(Pins.fileName(cid));
  }

  async set(cid, type, name = '') {
    const key = Pins.fileName(cid);
    const prev = this.map.get(key);
    // a recursive pin is never downgraded to direct by a later direct pin
    if (prev && prev.type === 'recursive' && type === 'direct') return prev;
    const entry = { cid, type, name };
    await writeFileAtomic(path.join(this.dir, key), JSON.stringify({ Cid: cid.toString(), Type: type, Name: name }) + '\n');
    this.map.set(key, entry);
    return entry;
  }

  async remove(cid) {
    const key = Pins.fileName(cid);
    await fsp.rm(path.join(this.dir, key), { force: true });
    await fsyncDir(this.dir);
    this.map.delete(key);
  }

  all() {
    return [...this.map.values()];
  }
}

function toV1(cid) {
  return cid.version === 0 ? cid.toV1() : cid;
}

// ---------------------------------------------------------------------------
// MFS (`ipfs files ...`): as in Kubo, a tree of UnixFS directory nodes in the
// blockstore. Its root CID is kept in <repo>/mfs/root, written atomically (temp file,
// fsync, rename, directory fsync) after the blocks it names, so every change either
// survives kill -9 whole or not at all. Mutations hold one lock and work on a copy of
// the directories they touch, which is encoded bottom-up when they finish.

const EMPTY_DIR_DATA = Uint8Array.of(0x08, 0x01); // UnixFS Data{Type: Directory}
const HAMT_SHARDING_SIZE = 256 * 1024; // Kubo shards a directory above this link estimate
const ERR_NOT_EXIST = 'file does not exist'; // Go's os.ErrNotExist
const UNIXFS = { raw: 0, directory: 1, file: 2, metadata: 3, symlink: 4, hamt: 5 };

class NotExistError extends ApiError {
  constructor() {
    super(ERR_NOT_EXIST);
    this.notExist = true;
  }
}

// Kubo's checkPath: absolute, then Go's path.Clean ('.' and '..' are resolved
// lexically, never above '/'), keeping one trailing slash
function checkMfsPath(p) {
  if (p.length === 0) throw new ApiError('paths must not be empty');
  if (p[0] !== '/') throw new ApiError('paths must start with a leading slash');
  const out = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  let cleaned = `/${out.join('/')}`;
  if (p.endsWith('/') && p !== '/') cleaned += '/';
  return cleaned;
}

// mfs.DirLookup's view of a path: its non-empty components
function mfsParts(p) {
  return p.split('/').filter((s) => s !== '');
}

// Go's path.Dir
function goDir(p) {
  const cut = p.lastIndexOf('/');
  return checkMfsPath(p.slice(0, cut + 1)).replace(/(.)\/$/, '$1');
}

// The fields of a UnixFS Data message this node needs: Type (1), Data (2), filesize (3).
function unixfsInfo(data) {
  let type = null;
  let fileSize = null;
  let i = 0;
  const varint = () => {
    let v = 0;
    let mul = 1;
    for (let n = 0; n < 10; n++) {
      if (i >= data.length) throw new Error('truncated varint');
      const b = data[i++];
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    throw new Error('varint too long');
  };
  while (i < data.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      const v = varint();
      if (field === 1) type = v;
      else if (field === 3) fileSize = v;
    } else if (wire === 2) {
      const len = varint();
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
  if (i > data.length) throw new Error('truncated field');
  if (type === null) throw new Error('no UnixFS type');
  return { type, fileSize: fileSize ?? 0 };
}

// A UnixFS node as MFS sees it: kind 'file' | 'directory' | 'hamt'
async function loadUnixfsNode(blocks, cid, signal) {
  const bytes = await blocks.read(cid, { signal });
  if (cid.code === raw.code) {
    return { cid, kind: 'file', raw: true, bytes, links: [], fileSize: bytes.length, cumulative: bytes.length };
  }
  if (cid.code !== dagPb.code) throw new ApiError('not unixfs node (proto or raw)');
  let pb;
  let info;
  try {
    pb = dagPb.decode(bytes);
    info = unixfsInfo(pb.Data ?? new Uint8Array(0));
  } catch (e) {
    throw new ApiError(`${cid}: not a UnixFS node: ${e.message}`);
  }
  let kind;
  if (info.type === UNIXFS.directory) kind = 'directory';
  else if (info.type === UNIXFS.hamt) kind = 'hamt';
  else if ([UNIXFS.raw, UNIXFS.file, UNIXFS.metadata, UNIXFS.symlink].includes(info.type)) kind = 'file';
  else throw new ApiError(`unrecognized node type: ${info.type}`);
  const cumulative = pb.Links.reduce((s, l) => s + (l.Tsize ?? 0), bytes.length);
  return { cid, kind, raw: false, bytes, links: pb.Links, fileSize: info.fileSize, cumulative };
}

// a directory in a transaction's working copy
class MfsDir {
  constructor(cid, links, version = cid?.version ?? 0) {
    this.cid = cid;
    this.version = version;
    this.entries = new Map(links.map((l) => [l.Name ?? '', { cid: l.Hash, tsize: l.Tsize ?? 0 }]));
    this.kids = new Map(); // name -> MfsDir loaded (or made) in this transaction
    this.dirty = false;
  }

  has(name) {
    return this.kids.has(name) || this.entries.has(name);
  }

  setFile(name, cid, tsize) {
    this.kids.delete(name);
    this.entries.set(name, { cid, tsize });
    this.dirty = true;
  }

  unlink(name) {
    this.kids.delete(name);
    this.entries.delete(name);
    this.dirty = true;
  }

  mkdir(name, version) {
    const d = new MfsDir(null, [], version ?? this.version);
    d.dirty = true;
    this.kids.set(name, d);
    this.entries.delete(name);
    this.dirty = true;
    return d;
  }
}

class Mfs {
  constructor(dir, blocks) {
    this.dir = dir;
    this.file = path.join(dir, 'root');
    this.blocks = blocks;
    this.root = null;
    this.tail = Promise.resolve();
  }

  async load() {
    await fsp.mkdir(this.dir, { recursive: true });
    for (const f of await fsp.readdir(this.dir)) {
      if (f.includes('.tmp-')) await fsp.rm(path.join(this.dir, f), { force: true }); // cut short by a crash
    }
    let text = null;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    if (text === null) {
      // a new repo: Kubo's empty MFS root, QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn
      const { cid } = await this.encodeDir(0, new Map());
      await this.setRoot(cid);
      return;
    }
    try {
      this.root = CID.parse(text.trim());
    } catch (e) {
      throw new Error(`${this.file}: not a CID: ${e.message}`);
    }
  }

  async setRoot(cid) {
    await writeFileAtomic(this.file, `${cid}\n`);
    this.root = cid;
  }

  // one mutation at a time
  exclusive(fn) {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => {});
    return run;
  }

  // a working copy of the tree as of now (reads use it without the lock: blocks are immutable)
  async begin(signal) {
    const n = await loadUnixfsNode(this.blocks, this.root, signal);
    if (n.kind !== 'directory') throw new ApiError(`MFS root ${this.root} is not a directory`);
    return { signal, root: new MfsDir(n.cid, n.links) };
  }

  // Run fn(tx) under the lock and commit what it changed, also when it fails: as in
  // Kubo, e.g. the directories made by `parents` stay when the write itself then fails.
  update(signal, fn) {
    return this.exclusive(async () => {
      const tx = await this.begin(signal);
      let result;
      let failure = null;
      try {
        result = await fn(tx);
      } catch (e) {
        failure = e;
      }
      const r = await this.commitDir(tx.root);
      if (r.changed) await this.setRoot(r.cid);
      if (failure) throw failure;
      return result;
    });
  }

  async commitDir(dir) {
    let changed = dir.dirty;
    for (const [name, kid] of dir.kids) {
      const r = await this.commitDir(kid);
      if (r.changed) {
        dir.entries.set(name, { cid: r.cid, tsize: r.tsize });
        changed = true;
      }
    }
    if (!changed) return { changed: false, cid: dir.cid };
    const { cid, tsize } = await this.encodeDir(dir.version, dir.entries);
    dir.cid = cid;
    dir.dirty = false;
    return { changed: true, cid, tsize };
  }

  // a basic (unsharded) UnixFS directory, links sorted by name as dag-pb requires
  async encodeDir(version, entries) {
    let estimate = 0;
    const links = [];
    for (const [name, { cid, tsize }] of entries) {
      estimate += Buffer.byteLength(name) + cid.bytes.length;
      links.push({ Name: name, Hash: cid, Tsize: tsize });
    }
    if (estimate > HAMT_SHARDING_SIZE) {
      throw new ApiError(`directory too large for this test node: Kubo would shard it (HAMT), which this node does not do (${links.length} entries)`);
    }
    const bytes = dagPb.encode(dagPb.prepare({ Data: EMPTY_DIR_DATA, Links: links }));
    const cid = CID.create(version, dagPb.code, await sha256.digest(bytes));
    await this.blocks.put(cid, bytes);
    return { cid, tsize: links.reduce((s, l) => s + l.Tsize, bytes.length) };
  }

  // a directory's child: {kind:'directory', dir} | {kind:'file', cid, node} | null
  async child(tx, dir, name) {
    const kid = dir.kids.get(name);
    if (kid) return { kind: 'directory', dir: kid };
    const e = dir.entries.get(name);
    if (!e) return null;
    const n = await loadUnixfsNode(this.blocks, e.cid, tx.signal);
    if (n.kind === 'hamt') throw new ApiError('HAMT-sharded directories are not supported by this test node');
    if (n.kind === 'directory') {
      const d = new MfsDir(n.cid, n.links);
      dir.kids.set(name, d);
      return { kind: 'directory', dir: d };
    }
    return { kind: 'file', cid: n.cid, node: n };
  }

  // mfs.Lookup
  async lookup(tx, p) {
    const parts = mfsParts(p);
    let cur = { kind: 'directory', dir: tx.root };
    for (let i = 0; i < parts.length; i++) {
      if (cur.kind !== 'directory') throw new ApiError(`cannot access ${parts.slice(0, i + 1).join('/')}: Not a directory`);
      const next = await this.child(tx, cur.dir, parts[i]);
      if (!next) throw new NotExistError();
      cur = next;
    }
    return cur;
  }

  // mfs.Mkdir(dir, Mkparents: true), as `files write --parents` calls it
  async mkdirParents(tx, dirPath, version) {
    const parts = mfsParts(dirPath);
    if (parts.length === 0) return;
    let cur = tx.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const next = await this.child(tx, cur, parts[i]);
      if (!next) cur = cur.mkdir(parts[i], version);
      // sic: Kubo names the path *before* the offending component here
      else if (next.kind !== 'directory') throw new ApiError(`${parts.slice(0, i).join('/')} was not a directory`);
      else cur = next.dir;
    }
    const last = parts[parts.length - 1];
    const fin = await this.child(tx, cur, last);
    if (!fin) cur.mkdir(last, version);
    else if (fin.kind !== 'directory') throw new ApiError('file already exists');
  }

  // Kubo's removePath
  async remove(tx, p, { force, recursive }) {
    if (p === '/') throw new ApiError('cannot delete root');
    const q = p.endsWith('/') ? p.slice(0, -1) : p;
    const cut = q.lastIndexOf('/');
    const name = q.slice(cut + 1);
    let parent;
    try {
      parent = await this.lookup(tx, q.slice(0, cut + 1));
    } catch (e) {
      if (force && e.notExist) return;
      throw e;
    }
    if (parent.kind !== 'directory') throw new ApiError("expected *mfs.Directory, didn't get it. This is likely a race condition");
    if (force) {
      if (parent.dir.has(name)) parent.dir.unlink(name);
      return;
    }
    const child = await this.child(tx, parent.dir, name);
    if (!child) throw new NotExistError();
    if (child.kind === 'directory' && !recursive) throw new ApiError('path is a directory, use -r to remove directories');
    parent.dir.unlink(name);
  }
}

// ---------------------------------------------------------------------------
// request parsing helpers (go-ipfs-cmds conventions)

function parseBool(name, v, dflt) {
  if (v === null || v === undefined) return dflt;
  if (v === '') return true;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new TextError(400, `Could not convert value "${v}" to type "bool" (for option "-${name}")`);
}

// an option given by any of its names (go-ipfs-cmds accepts aliases: -e for --create, ...)
function opt(params, ...names) {
  for (const n of names) {
    const v = params.get(n);
    if (v !== null) return v;
  }
  return null;
}

function parseInt10(name, v, dflt) {
  if (v === null || v === undefined) return dflt;
  if (!/^[+-]?\d+$/.test(v)) throw new TextError(400, `Could not convert value "${v}" to type "int" (for option "-${name}")`);
  return Number(v);
}

// Go time.ParseDuration
function parseGoDuration(s) {
  if (s === '0') return 0;
  const m = /^([+-]?)((?:\d*\.?\d*(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!m) return null;
  const unit = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let total = 0;
  const re = /(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)/g;
  let part;
  while ((part = re.exec(m[2])) !== null) {
    if (part[1] === '' || part[1] === '.') return null;
    total += Number(part[1]) * unit[part[2]];
  }
  return m[1] === '-' ? -total : total;
}

function cidEncoder(params) {
  const baseName = params.get('cid-base');
  const upgrade = parseBool('upgrade-cidv0-in-output', params.get('upgrade-cidv0-in-output'), false);
  const bases = { base32, base58btc, base36 };
  if (baseName && !bases[baseName]) throw new ApiError(`unknown multibase "${baseName}" (this node supports base32, base58btc, base36)`);
  const b = bases[baseName ?? 'base32'];
  return (cid) => {
    if (cid.version === 0 && !upgrade) return cid.toString();
    return toV1(cid).toString(b);
  };
}

// "/ipfs/CID/a/b", "ipfs://CID/a", "CID/a" -> { cid, rest: ['a','b'] }
function parsePathArg(arg) {
  let s = String(arg);
  if (s.startsWith('ipfs://')) s = s.slice(7);
  else if (s.startsWith('ipfs:')) s = s.slice(5);
  else if (s.startsWith('/ipfs/')) s = s.slice(6);
  else if (s.startsWith('/ipns/') || s.startsWith('ipns:')) throw new ApiError(`this node has no IPNS: cannot resolve "${arg}"`);
  const parts = s.split('/').filter((p) => p !== '');
  if (parts.length === 0) throw new ApiError(`invalid path "${arg}": path does not have enough components`);
  let cid;
  try {
    cid = CID.parse(parts[0]);
  } catch (e) {
    throw new ApiError(`invalid path "${arg}": invalid cid: ${e.message}`);
  }
  return { cid, rest: parts.slice(1) };
}

function requireArgs(params, name) {
  const args = params.getAll('arg');
  if (args.length === 0) throw new ApiError(`argument "${name}" is required`);
  return args;
}

// ---------------------------------------------------------------------------
// multipart/form-data (buffered; the body is capped by --max-body-bytes)

function readBody(req, limit, signal) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    const onAbort = () => reject(abortMessage(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        req.pause();
        signal?.removeEventListener('abort', onAbort);
        reject(new TextError(413, `request body over ${limit} bytes (--max-body-bytes)`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      signal?.removeEventListener('abort', onAbort);
      resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
  });
}

function headerParam(value, name) {
  // name="quoted" or name=token
  const re = new RegExp(`(?:^|;)\\s*${name}\\*?=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, 'i');
  const m = re.exec(value);
  if (!m) return null;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}

function parseMultipart(body, contentType) {
  const boundary = headerParam(contentType, 'boundary');
  if (!boundary) throw new TextError(400, 'no multipart boundary param in Content-Type');
  const delim = Buffer.from(`--${boundary}`);
  const parts = [];
  let pos = body.indexOf(delim);
  if (pos < 0) throw new TextError(400, 'multipart: NextPart: EOF');
  for (let guard = 0; guard < 1_000_000; guard++) {
    pos += delim.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) break; // closing "--"
    // skip optional whitespace and the CRLF after the delimiter
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++;
    if (body[pos] === 0x0d && body[pos + 1] === 0x0a) pos += 2;
    else if (body[pos] === 0x0a) pos += 1;
    let headerEnd = body.indexOf('\r\n\r\n', pos);
    let sepLen = 4;
    if (headerEnd < 0) {
      headerEnd = body.indexOf('\n\n', pos);
      sepLen = 2;
    }
    if (headerEnd < 0) throw new TextError(400, 'multipart: malformed part headers');
    const headers = {};
    for (const line of body.subarray(pos, headerEnd).toString('latin1').split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const start = headerEnd + sepLen;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), start);
    if (next < 0) throw new TextError(400, 'multipart: unexpected end of body (no closing boundary)');
    parts.push({ headers, data: body.subarray(start, next) });
    pos = next + 2;
  }
  return parts;
}

function partName(headers) {
  const cd = headers['content-disposition'] ?? '';
  let name = headerParam(cd, 'filename');
  if (name === null) return '';
  try {
    name = decodeURIComponent(name.replace(/\+/g, '%20'));
  } catch {
    // keep as is
  }
  return name;
}

// ---------------------------------------------------------------------------
// HTTP plumbing

const EXPOSED = 'X-Stream-Output, X-Chunked-Output, X-Content-Length';

function commonHeaders(extra = {}) {
  return {
    'Access-Control-Allow-Headers': EXPOSED,
    'Access-Control-Expose-Headers': EXPOSED,
    Trailer: 'X-Stream-Error',
    Vary: 'Origin',
    ...extra,
  };
}

function sendJson(res, value, { chunked = false } = {}) {
  const headers = commonHeaders({ 'Content-Type': 'application/json' });
  if (chunked) headers['X-Chunked-Output'] = '1';
  res.writeHead(200, headers);
  const values = Array.isArray(value) && chunked ? value : [value];
  for (const v of values) res.write(JSON.stringify(v) + '\n');
  res.end();
}

function sendError(res, err) {
  if (res.headersSent) {
    // Kubo reports errors after the body started in the X-Stream-Error trailer
    try {
      res.addTrailers({ 'X-Stream-Error': String(err.message).split('\n')[0] });
    } catch {
      // trailer not possible (not chunked)
    }
    res.end();
    return;
  }
  if (err instanceof TextError) {
    res.writeHead(err.status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    res.end(err.message + '\n');
    return;
  }
  const api = err instanceof ApiError ? err : new ApiError(err?.message || String(err));
  res.writeHead(api.status, commonHeaders({ 'Content-Type': 'application/json' }));
  res.end(JSON.stringify({ Message: api.message, Code: api.code, Type: 'error' }) + '\n');
}

// ---------------------------------------------------------------------------
// the node

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const repo = path.resolve(opts.repo);
  fs.mkdirSync(repo, { recursive: true });
  let lock;
  try {
    lock = acquireLock(repo);
  } catch (e) {
    process.stderr.write(`Error: ${e.message}\n`);
    process.exit(1);
  }
  const ident = loadOrCreateIdentity(repo);
  const store = new FsBlockstore(path.join(repo, 'blocks'));
  await store.open();
  const blocks = new Blocks(store, { offline: opts.offline });
  const pins = new Pins(path.join(repo, 'pins'));
  await pins.load();
  const mfs = new Mfs(path.join(repo, 'mfs'), blocks);
  await mfs.load();
  const log = (...a) => {
    if (opts.verbose) process.stderr.write(a.join(' ') + '\n');
  };

  // --- /api/v0/add -------------------------------------------------------
  async function add(req, res, params, signal) {
    const cidVersion = parseInt10('cid-version', params.get('cid-version'), 0);
    if (cidVersion !== 0 && cidVersion !== 1) throw new ApiError(`invalid cid version number: ${cidVersion}`);
    const rawLeaves = parseBool('raw-leaves', params.get('raw-leaves'), cidVersion === 1);
    const pin = parseBool('pin', params.get('pin'), true);
    const onlyHash = parseBool('only-hash', params.get('only-hash'), false);
    const progress = parseBool('progress', params.get('progress'), false);
    const hash = (params.get('hash') ?? 'sha2-256').toLowerCase();
    if (hash !== 'sha2-256') {
      throw new ApiError(`unrecognized or unsupported hash function: "${hash}" (this node only does sha2-256)`);
    }
    const chunker = params.get('chunker') || `size-${DEFAULT_CHUNK_SIZE}`;
    const m = /^size-(\d+)$/.exec(chunker);
    if (!m) {
      if (/^(rabin|buzhash)/.test(chunker)) throw new ApiError(`chunker "${chunker}" is not supported by this node (only size-N)`);
      throw new ApiError(`unrecognized chunker option: ${chunker}`);
    }
    const chunkSize = Number(m[1]);
    if (chunkSize <= 0) throw new ApiError('chunker size must be greater than 0');
    if (chunkSize > MAX_CHUNK_SIZE) throw new ApiError(`chunker parameters may not exceed the maximum chunk size of ${MAX_CHUNK_SIZE}`);
    const maxLinks = parseInt10('max-file-links', params.get('max-file-links'), DEFAULT_MAX_LINKS);
    if (maxLinks < 2) throw new ApiError('max-file-links must be at least 2');
    for (const unsupported of ['trickle', 'wrap-with-directory', 'inline', 'nocopy', 'preserve-mode', 'preserve-mtime', 'to-files']) {
      const v = params.get(unsupported);
      if (v !== null && parseBool(unsupported, v, false) !== false && !(unsupported === 'to-files' && v === '')) {
        throw new ApiError(`option "${unsupported}" is not supported by this test node`);
      }
    }
    for (const unsupported of ['mode', 'mtime']) {
      if (params.get(unsupported)) throw new ApiError(`option "${unsupported}" is not supported by this test node`);
    }
    const enc = cidEncoder(params);

    const ct = req.headers['content-type'] ?? '';
    if (!/^multipart\/form-data\s*(;|$)/i.test(ct)) throw new TextError(400, "file argument 'path' is required");
    const body = await readBody(req, opts.maxBodyBytes, signal);
    const parts = parseMultipart(body, ct);
    if (parts.length === 0) throw new TextError(400, "file argument 'path' is required");

    const sink = onlyHash ? { put: async (cid) => cid, has: async () => false } : blocks.view(signal);
    const events = [];
    for (const part of parts) {
      const type = (part.headers['content-type'] ?? '').toLowerCase();
      if (type.startsWith('application/x-directory') || type.startsWith('multipart/')) {
        throw new ApiError('directories are not supported by this test node (add files one by one)');
      }
      if (type.startsWith('application/symlink')) throw new ApiError('symlinks are not supported by this test node');
      let root;
      for await (const entry of importer([{ content: [part.data] }], sink, {
        cidVersion,
        rawLeaves,
        leafType: 'file',
        reduceSingleLeafToSelf: true,
        wrapWithDirectory: false,
        chunker: fixedSize({ chunkSize }),
        layout: balanced({ maxChildrenPerNode: maxLinks }),
      })) {
        root = entry;
      }
      if (signal.aborted) throw abortMessage(signal);
      if (pin && !onlyHash) await pins.set(root.cid, 'recursive');
      const name = partName(part.headers);
      const hashStr = enc(root.cid);
      if (progress) events.push({ Name: name || hashStr, Bytes: part.data.length });
      events.push({ Name: name || hashStr, Hash: hashStr, Size: String(root.size) });
      log('add', hashStr, part.data.length, 'bytes');
    }
    sendJson(res, events, { chunked: true });
  }

  // --- /api/v0/cat -------------------------------------------------------
  async function cat(req, res, params, signal) {
    const args = requireArgs(params, 'ipfs-path');
    const offset = parseInt10('offset', params.get('offset'), 0);
    if (offset < 0) throw new ApiError('cannot specify negative offset');
    const lengthOpt = parseInt10('length', params.get('length'), null);
    if (lengthOpt !== null && lengthOpt < 0) throw new ApiError('cannot specify negative length');
    const view = blocks.view(signal);

    // resolve every argument before answering, as Kubo does
    const files = [];
    for (const arg of args) {
      const { cid, rest } = parsePathArg(arg);
      const p = [cid.toString(), ...rest].join('/');
      let entry;
      try {
        entry = await exporter(p, view, { signal });
      } catch (e) {
        throw e instanceof ApiError ? e : new ApiError(e.message);
      }
      if (entry.type === 'directory') throw new ApiError('this dag node is a directory');
      if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
        throw new ApiError(`cannot cat a ${entry.type} node`);
      }
      files.push(entry);
    }

    // concatenated view with offset/length across all arguments
    let skip = offset;
    let remaining = lengthOpt ?? Infinity;
    const plan = [];
    let total = 0;
    for (const entry of files) {
      const size = Number(entry.type === 'file' ? entry.unixfs.fileSize() : entry.size);
      if (skip >= size) {
        skip -= size;
        continue;
      }
      const take = Math.min(size - skip, remaining);
      if (take <= 0) break;
      plan.push({ entry, offset: skip, length: take });
      total += take;
      remaining -= take;
      skip = 0;
    }

    async function* stream() {
      for (const { entry, offset: o, length: l } of plan) {
        yield* entry.content({ offset: o, length: l, signal, blockReadConcurrency: 1 });
      }
    }
    const it = stream();
    let first;
    try {
      first = await it.next(); // fail before the headers if the first block is not there
    } catch (e) {
      throw e instanceof ApiError ? e : new ApiError(e.message);
    }
    res.writeHead(200, commonHeaders({
      'Content-Type': 'text/plain',
      'X-Stream-Output': '1',
      'X-Content-Length': String(total),
    }));
    try {
      if (!first.done) res.write(first.value);
      for (;;) {
        const n = await it.next();
        if (n.done) break;
        if (!res.write(n.value)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    } catch (e) {
      sendError(res, e);
    }
  }

  // --- /api/v0/block/* ---------------------------------------------------
  function blockArg(arg) {
    const { cid, rest } = parsePathArg(arg);
    if (rest.length > 0) throw new ApiError(`"${arg}" points below a root CID, expected a single CID`);
    return cid;
  }

  async function blockGet(req, res, params, signal) {
    const [arg] = requireArgs(params, 'cid');
    const bytes = await blocks.read(blockArg(arg), { signal });
    res.writeHead(200, commonHeaders({ 'Content-Type': 'text/plain', 'X-Stream-Output': '1' }));
    res.end(bytes);
  }

  async function blockStat(req, res, params, signal) {
    const args = requireArgs(params, 'cid');
    const enc = cidEncoder(params);
    const out = [];
    for (const arg of args) {
      const cid = blockArg(arg);
      const bytes = await blocks.read(cid, { signal });
      out.push({ Key: enc(cid), Size: bytes.length });
    }
    sendJson(res, out, { chunked: true });
  }

  async function blockPut(req, res, params, signal) {
    const format = params.get('format');
    let codec = params.get('cid-codec') ?? 'raw';
    let version = 1;
    if (format === 'v0') {
      codec = 'dag-pb';
      version = 0;
    } else if (format) {
      codec = format === 'protobuf' ? 'dag-pb' : format;
    }
    const codecs = { raw: raw.code, 'dag-pb': dagPb.code };
    if (!(codec in codecs)) throw new ApiError(`cid-codec "${codec}" is not supported by this node (raw, dag-pb)`);
    const mh = (params.get('mhtype') ?? 'sha2-256').toLowerCase();
    if (mh !== 'sha2-256') throw new ApiError(`mhtype "${mh}" is not supported by this node (sha2-256)`);
    const pin = parseBool('pin', params.get('pin'), false);
    const allowBig = parseBool('allow-big-block', params.get('allow-big-block'), false);
    const enc = cidEncoder(params);
    const ct = req.headers['content-type'] ?? '';
    if (!/^multipart\/form-data\s*(;|$)/i.test(ct)) throw new TextError(400, "file argument 'data' is required");
    const parts = parseMultipart(await readBody(req, opts.maxBodyBytes, signal), ct);
    if (parts.length === 0) throw new TextError(400, "file argument 'data' is required");
    const out = [];
    for (const part of parts) {
      const data = new Uint8Array(part.data);
      if (data.length > SOFT_BLOCK_LIMIT && !allowBig) {
        throw new ApiError("produced block is over 2MiB: big blocks can't be exchanged with other peers. consider using UnixFS for automatic chunking of bigger files, or pass --allow-big-block to override");
      }
      if (codecs[codec] === dagPb.code) {
        try {
          dagPb.decode(data);
        } catch (e) {
          throw new ApiError(`block is not valid dag-pb: ${e.message}`);
        }
      }
      const cid = CID.create(version, codecs[codec], await sha256.digest(data));
      await blocks.put(cid, data);
      if (pin) await pins.set(cid, 'recursive');
      out.push({ Key: enc(cid), Size: data.length });
    }
    sendJson(res, out, { chunked: true });
  }

  // --- /api/v0/pin/* -----------------------------------------------------
  async function pinAdd(req, res, params, signal) {
    const args = requireArgs(params, 'ipfs-path');
    const recursive = parseBool('recursive', params.get('recursive'), true);
    const name = params.get('name') ?? '';
    const enc = cidEncoder(params);
    const added = [];
    for (const arg of args) {
      const { cid: root, rest } = parsePathArg(arg);
      let cid = root;
      if (rest.length > 0) {
        const entry = await exporter([root.toString(), ...rest].join('/'), blocks.view(signal), { signal });
        cid = entry.cid;
      }
      if (recursive) await blocks.walk(cid, { signal });
      else await blocks.read(cid, { signal });
      await pins.set(cid, recursive ? 'recursive' : 'direct', name);
      added.push(enc(cid));
      log('pin', enc(cid), recursive ? 'recursive' : 'direct');
    }
    sendJson(res, { Pins: added });
  }

  // CIDs reachable from recursive pins (blocks held locally only), with the pin they hang from
  async function indirectIndex() {
    const index = new Map(); // v1 string -> {cid, via}
    for (const p of pins.all()) {
      if (p.type !== 'recursive') continue;
      await blocks.walk(p.cid, {
        wait: false,
        onBlock: (cid) => {
          const k = toV1(cid).toString();
          if (!index.has(k) && !cid.equals(p.cid)) index.set(k, { cid, via: p.cid });
        },
      });
    }
    return index;
  }

  async function pinLs(req, res, params) {
    const type = params.get('type') ?? 'all';
    if (!['all', 'direct', 'indirect', 'recursive'].includes(type)) {
      throw new ApiError(`invalid type '${type}', must be one of {direct, indirect, recursive, all}`);
    }
    const stream = parseBool('stream', params.get('stream'), false);
    const names = parseBool('names', params.get('names'), false);
    const enc = cidEncoder(params);
    const rows = [];
    const args = params.getAll('arg');
    if (args.length > 0) {
      let indirect = null;
      for (const arg of args) {
        const { cid: root, rest } = parsePathArg(arg);
        let cid = root;
        if (rest.length > 0) cid = (await exporter([root.toString(), ...rest].join('/'), blocks.view(null))).cid;
        const p = pins.get(cid);
        let row = null;
        if (p && (type === 'all' || type === p.type)) row = { Cid: enc(cid), Type: p.type, Name: names ? p.name : '' };
        else if (!p || type === 'indirect' || type === 'all') {
          if (type === 'all' || type === 'indirect') {
            indirect ??= await indirectIndex();
            const hit = indirect.get(toV1(cid).toString());
            if (hit) row = { Cid: enc(cid), Type: `indirect through ${enc(hit.via)}`, Name: '' };
          }
        }
        if (!row) throw new ApiError(`path '${arg}' is not pinned`);
        rows.push(row);
      }
    } else {
      if (type === 'all' || type === 'recursive') {
        for (const p of pins.all()) if (p.type === 'recursive') rows.push({ Cid: enc(p.cid), Type: 'recursive', Name: names ? p.name : '' });
      }
      if (type === 'all' || type === 'direct') {
        for (const p of pins.all()) if (p.type === 'direct') rows.push({ Cid: enc(p.cid), Type: 'direct', Name: names ? p.name : '' });
      }
      if (type === 'all' || type === 'indirect') {
        for (const { cid } of (await indirectIndex()).values()) {
          if (!pins.get(cid)) rows.push({ Cid: enc(cid), Type: 'indirect', Name: '' });
        }
      }
    }
    if (stream) {
      sendJson(res, rows.map((r) => (r.Name ? r : { Cid: r.Cid, Type: r.Type })), { chunked: true });
      return;
    }
    const keys = {};
    for (const r of rows) keys[r.Cid] = { Type: r.Type, Name: r.Name };
    sendJson(res, rows.length > 0 ? { Keys: keys } : {});
  }

  async function pinRm(req, res, params) {
    const args = requireArgs(params, 'ipfs-path');
    const recursive = parseBool('recursive', params.get('recursive'), true);
    const enc = cidEncoder(params);
    const removed = [];
    for (const arg of args) {
      const { cid } = parsePathArg(arg);
      const p = pins.get(cid);
      if (!p) throw new ApiError('not pinned or pinned indirectly');
      if (p.type === 'recursive' && !recursive) throw new ApiError(`${enc(cid)} is pinned recursively`);
      await pins.remove(cid);
      removed.push(enc(cid));
    }
    sendJson(res, { Pins: removed });
  }

  // --- /api/v0/id, /api/v0/version ---------------------------------------
  async function id(req, res, params) {
    if (params.getAll('arg').length > 0 && params.get('arg') !== ident.id) {
      throw new ApiError('this test node knows no other peers');
    }
    sendJson(res, {
      ID: ident.id,
      PublicKey: ident.publicKey,
      Addresses: [],
      AgentVersion: `chainstore-ipfs-testnode/${NODE_VERSION}`,
      Protocols: [],
    });
  }

  async function version(req, res) {
    sendJson(res, {
      Version: REPORTED_VERSION,
      Commit: '',
      Repo: '16',
      System: `${process.arch === 'x64' ? 'amd64' : process.arch}/${process.platform}`,
      Golang: `node ${process.version}`,
    });
  }

  // --- /api/v0/files/* (MFS) ----------------------------------------------
  // Kubo 0.36's core/commands/files.go: checks, their order and messages.

  async function importFile(bytes, { cidVersion, rawLeaves }, signal) {
    let root;
    for await (const entry of importer([{ content: [bytes] }], blocks.view(signal), {
      cidVersion,
      rawLeaves,
      leafType: 'file',
      reduceSingleLeafToSelf: true,
      wrapWithDirectory: false,
      chunker: fixedSize({ chunkSize: DEFAULT_CHUNK_SIZE }),
      layout: balanced({ maxChildrenPerNode: DEFAULT_MAX_LINKS }),
    })) {
      root = entry;
    }
    return { cid: root.cid, tsize: Number(root.size) };
  }

  async function readWhole(cid, signal) {
    const entry = await exporter(cid, blocks.view(signal), { signal });
    const size = Number(entry.type === 'file' ? entry.unixfs.fileSize() : entry.size);
    if (size > opts.maxBodyBytes) throw new ApiError(`file is larger than this test node's limit of ${opts.maxBodyBytes} bytes (--max-body-bytes)`);
    const chunks = [];
    for await (const c of entry.content({ signal, blockReadConcurrency: 1 })) chunks.push(c);
    return Buffer.concat(chunks);
  }

  async function filesWrite(req, res, params, signal) {
    const [arg] = requireArgs(params, 'path');
    const ct = req.headers['content-type'] ?? '';
    if (!/^multipart\/form-data\s*(;|$)/i.test(ct)) throw new TextError(400, "file argument 'data' is required");
    const parts = parseMultipart(await readBody(req, opts.maxBodyBytes, signal), ct);
    if (parts.length === 0) throw new TextError(400, "file argument 'data' is required");
    const data = parts[0].data;
    const create = parseBool('create', opt(params, 'create', 'e'), false);
    const parents = parseBool('parents', opt(params, 'parents', 'p'), false);
    const truncate = parseBool('truncate', opt(params, 'truncate', 't'), false);
    parseBool('flush', opt(params, 'flush', 'f'), true); // accepted; this node always flushes
    const rawLeavesOpt = parseBool('raw-leaves', params.get('raw-leaves'), null);
    let version = parseInt10('cid-version', opt(params, 'cid-version', 'cid-ver'), null);
    const offset = parseInt10('offset', opt(params, 'offset', 'o'), 0);
    const count = parseInt10('count', opt(params, 'count', 'n'), null);
    const hash = params.get('hash');

    const p = checkMfsPath(arg);
    if (hash !== null) {
      if (hash.toLowerCase() !== 'sha2-256') throw new ApiError(`unrecognized or unsupported hash function: "${hash}" (this node only does sha2-256)`);
      if (!version) version = 1; // Kubo: --hash implies CIDv1
    }
    if (version !== null && version !== 0 && version !== 1) throw new ApiError(`unknown CID version: ${version}`);
    if (offset < 0) throw new ApiError('cannot have negative write offset');

    await mfs.update(signal, async (tx) => {
      if (parents) await mfs.mkdirParents(tx, goDir(p), version);
      // getFileHandle
      let target = null;
      try {
        target = await mfs.lookup(tx, p);
      } catch (e) {
        if (!e.notExist) throw e;
      }
      const parts = mfsParts(p);
      const name = parts[parts.length - 1];
      let parent;
      let oldCid = null;
      if (target) {
        if (target.kind !== 'file') throw new ApiError(`${p} was not a file`);
        oldCid = target.cid;
        parent = await mfs.lookup(tx, `/${parts.slice(0, -1).join('/')}`);
      } else {
        if (!create) throw new NotExistError();
        if (p.endsWith('/')) throw new NotExistError(); // Kubo looks the parent up as "<path>/", which is missing too
        parent = await mfs.lookup(tx, `/${parts.slice(0, -1).join('/')}`);
        if (parent.kind !== 'directory') throw new ApiError("expected *mfs.Directory, didn't get it. This is likely a race condition");
      }
      const fileVersion = oldCid ? oldCid.version : (version ?? parent.dir.version);
      const importOpts = { cidVersion: fileVersion, rawLeaves: rawLeavesOpt ?? fileVersion !== 0 };
      const setContent = async (bytes) => {
        const { cid, tsize } = await importFile(bytes, importOpts, signal);
        parent.dir.setFile(name, cid, tsize);
      };
      if (!oldCid) await setContent(Buffer.alloc(0)); // Kubo adds the empty file first
      else if (truncate) await setContent(Buffer.alloc(0));
      if (count !== null && count < 0) throw new ApiError('cannot have negative byte count');

      const chunk = count === null ? data : data.subarray(0, count);
      const base = oldCid && !truncate ? await readWhole(oldCid, signal) : Buffer.alloc(0);
      const size = Math.max(base.length, offset + chunk.length); // a gap past the end is zero-filled
      if (size > opts.maxBodyBytes) throw new ApiError(`the file would be larger than this test node's limit of ${opts.maxBodyBytes} bytes (--max-body-bytes)`);
      if (chunk.length === 0 && size === base.length) return; // nothing to change
      const out = Buffer.alloc(size);
      base.copy(out);
      chunk.copy(out, offset);
      await setContent(out);
      log('files/write', p, size, 'bytes');
    });
    sendJson(res, [], { chunked: true }); // Kubo: 200, no body
  }

  async function filesRead(req, res, params, signal) {
    const [arg] = requireArgs(params, 'path');
    const offset = parseInt10('offset', opt(params, 'offset', 'o'), 0);
    const count = parseInt10('count', opt(params, 'count', 'n'), null);
    const p = checkMfsPath(arg);
    let target;
    try {
      target = await mfs.lookup(await mfs.begin(signal), p);
    } catch (e) {
      throw e instanceof ApiError ? new ApiError(`${p}: ${e.message}`) : e;
    }
    if (target.kind !== 'file') throw new ApiError(`${p} was not a file`);
    if (offset < 0) throw new ApiError('cannot specify negative offset');
    const entry = await exporter(target.cid, blocks.view(signal), { signal });
    const size = Number(entry.type === 'file' ? entry.unixfs.fileSize() : entry.size);
    if (offset > size) throw new ApiError(`offset was past end of file (${offset} > ${size})`);
    if (count !== null && count < 0) throw new ApiError("cannot specify negative 'count'");
    const length = count === null ? size - offset : Math.min(count, size - offset);
    let it = null;
    let first = { done: true };
    if (length > 0) {
      it = entry.content({ offset, length, signal, blockReadConcurrency: 1 });
      try {
        first = await it.next(); // fail before the headers if the first block is not there
      } catch (e) {
        throw e instanceof ApiError ? e : new ApiError(e.message);
      }
    }
    res.writeHead(200, commonHeaders({ 'Content-Type': 'text/plain', 'X-Stream-Output': '1' }));
    try {
      if (!first.done) res.write(first.value);
      while (it) {
        const n = await it.next();
        if (n.done) break;
        if (!res.write(n.value)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    } catch (e) {
      sendError(res, e);
    }
  }

  async function statOf(cid, { enc, withLocal, signal }) {
    const n = await loadUnixfsNode(blocks, cid, signal);
    const out = {
      Hash: enc(cid),
      Size: n.fileSize,
      CumulativeSize: n.cumulative,
      Blocks: n.links.length,
      Type: n.kind === 'file' ? 'file' : 'directory',
    };
    if (withLocal) {
      // Kubo's walkBlock: every link followed (no de-duplication), offline
      let local = true;
      let sizeLocal = 0;
      const stack = [cid];
      while (stack.length > 0) {
        if (signal.aborted) throw abortMessage(signal);
        const c = stack.pop();
        const bytes = await blocks.tryRead(c);
        if (!bytes) {
          local = false;
          continue;
        }
        sizeLocal += bytes.length;
        for (const l of Blocks.links(c, bytes)) stack.push(l);
      }
      out.WithLocality = true;
      if (local) out.Local = true;
      if (sizeLocal) out.SizeLocal = sizeLocal;
    }
    return out;
  }

  async function filesStat(req, res, params, signal) {
    const [arg] = requireArgs(params, 'path');
    const hashOnly = parseBool('hash', params.get('hash'), false);
    const sizeOnly = parseBool('size', params.get('size'), false);
    const format = params.get('format');
    const withLocal = parseBool('with-local', params.get('with-local'), false);
    const enc = cidEncoder(params);
    if ([hashOnly, sizeOnly, format !== null].filter(Boolean).length > 1) {
      throw new ApiError('invalid parameters: format was set by multiple options. Only one format option is allowed', { code: 1 });
    }
    const p = checkMfsPath(arg);
    let cid;
    if (p.startsWith('/ipfs/')) {
      const { cid: root, rest } = parsePathArg(p);
      cid = rest.length > 0 ? (await exporter([root.toString(), ...rest].join('/'), blocks.view(signal), { signal })).cid : root;
    } else {
      const target = await mfs.lookup(await mfs.begin(signal), p);
      cid = target.kind === 'directory' ? target.dir.cid : target.cid;
    }
    sendJson(res, await statOf(cid, { enc, withLocal, signal }));
  }

  async function filesLs(req, res, params, signal) {
    const arg = params.getAll('arg')[0] ?? '/';
    const long = parseBool('long', opt(params, 'long', 'l'), false);
    parseBool('U', params.get('U'), false); // order only matters for Kubo's text output
    const enc = cidEncoder(params);
    const p = checkMfsPath(arg);
    const tx = await mfs.begin(signal);
    const target = await mfs.lookup(tx, p);
    const entries = [];
    if (target.kind === 'directory') {
      for (const name of target.dir.entries.keys()) {
        if (!long) {
          entries.push({ Name: name, Type: 0, Size: 0, Hash: '' });
          continue;
        }
        const c = await mfs.child(tx, target.dir, name);
        if (c.kind === 'directory') entries.push({ Name: name, Type: 1, Size: 0, Hash: c.dir.cid.toString() });
        else entries.push({ Name: name, Type: 0, Size: c.node.fileSize, Hash: c.cid.toString() });
      }
    } else {
      const name = p.slice(p.lastIndexOf('/') + 1);
      entries.push(long ? { Name: name, Type: 0, Size: target.node.fileSize, Hash: enc(target.cid) } : { Name: name, Type: 0, Size: 0, Hash: '' });
    }
    sendJson(res, { Entries: entries.length > 0 ? entries : null });
  }

  async function filesRm(req, res, params, signal) {
    const args = requireArgs(params, 'path');
    const recursive = parseBool('recursive', opt(params, 'recursive', 'r'), false);
    const force = parseBool('force', params.get('force'), false);
    const errs = [];
    await mfs.update(signal, async (tx) => {
      for (const arg of args) {
        let p;
        try {
          p = checkMfsPath(arg);
        } catch (e) {
          errs.push(`${arg} is not a valid path: ${e.message}`);
          continue;
        }
        try {
          await mfs.remove(tx, p, { force, recursive });
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          errs.push(`${p}: ${e.message}`);
        }
      }
    });
    if (errs.length === 0) {
      sendJson(res, [], { chunked: true }); // Kubo: 200, no body
      return;
    }
    // Kubo emits each failure as a JSON string, then ends the stream with an error:
    // HTTP 200, the strings in the body, "can't remove some files" in the trailer
    res.writeHead(200, commonHeaders({ 'Content-Type': 'application/json', 'X-Chunked-Output': '1' }));
    for (const m of errs) res.write(JSON.stringify(m) + '\n');
    res.addTrailers({ 'X-Stream-Error': "can't remove some files" });
    res.end();
  }

  const routes = new Map([
    ['/api/v0/add', add],
    ['/api/v0/cat', cat],
    ['/api/v0/block/get', blockGet],
    ['/api/v0/block/stat', blockStat],
    ['/api/v0/block/put', blockPut],
    ['/api/v0/pin/add', pinAdd],
    ['/api/v0/pin/ls', pinLs],
    ['/api/v0/pin/rm', pinRm],
    ['/api/v0/files/write', filesWrite],
    ['/api/v0/files/read', filesRead],
    ['/api/v0/files/stat', filesStat],
    ['/api/v0/files/ls', filesLs],
    ['/api/v0/files/rm', filesRm],
    ['/api/v0/id', id],
    ['/api/v0/version', version],
  ]);

  const inflight = new Set(); // AbortControllers of running requests
  let port = opts.port;

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    let pathname = url.pathname.replace(/\/+$/, '');
    const params = url.searchParams;
    log(req.method, req.url);
    if (!pathname.startsWith('/api/v0/') && pathname !== '/api/v0') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      res.end('404 page not found\n');
      return;
    }
    // go-ipfs-cmds: the method is checked before the command is looked up
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { Allow: 'OPTIONS, POST' });
      res.end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { Allow: 'OPTIONS, POST', 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      res.end('405 - Method Not Allowed\n');
      req.resume();
      return;
    }
    // Kubo refuses browser requests from origins it was not configured for
    const allowed = new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);
    const origin = req.headers.origin;
    let refererOrigin = null;
    if (req.headers.referer) {
      try {
        const u = new URL(req.headers.referer);
        refererOrigin = `${u.protocol}//${u.host}`;
      } catch {
        refererOrigin = 'invalid';
      }
    }
    if ((origin && !allowed.has(origin)) || (refererOrigin && !allowed.has(refererOrigin))) {
      res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      res.end('403 - Forbidden\n');
      req.resume();
      return;
    }
    let handler = routes.get(pathname);
    if (!handler) {
      // go-ipfs-cmds: /api/v0/cat/<arg> passes the last segment as an argument
      const cut = pathname.lastIndexOf('/');
      const h = routes.get(pathname.slice(0, cut));
      if (h && !routes.has(pathname)) {
        params.append('arg', decodeURIComponent(pathname.slice(cut + 1)));
        handler = h;
      }
    }
    if (!handler) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      res.end('404 page not found\n');
      req.resume();
      return;
    }

    // request context: Kubo's global `timeout` option, the client going away, shutdown,
    // and --max-wait-ms as the upper bound for waiting on blocks this node lacks
    const ac = new AbortController();
    inflight.add(ac);
    const timers = [];
    const timeoutStr = params.get('timeout');
    try {
      if (timeoutStr !== null) {
        const ms = parseGoDuration(timeoutStr);
        if (ms === null) throw new TextError(400, `time: invalid duration "${timeoutStr}"`);
        timers.push(setTimeout(() => ac.abort(new ApiError(DEADLINE)), Math.max(0, ms)));
      }
      timers.push(setTimeout(() => ac.abort(new ApiError(DEADLINE)), opts.maxWaitMs));
      res.on('close', () => {
        if (!res.writableFinished) ac.abort(new ApiError(CANCELED));
      });
      await handler(req, res, params, ac.signal);
    } catch (e) {
      if (!(e instanceof ApiError) && !(e instanceof TextError)) log('error', e?.stack || e);
      if (!res.destroyed) sendError(res, e);
      req.resume();
    } finally {
      for (const t of timers) clearTimeout(t);
      inflight.delete(ac);
    }
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 30000;
  server.requestTimeout = 0; // uploads and cats are bounded by the request context instead

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = server.address().port;
  process.stdout.write(`ready ${port}\n`);

  let stopping = false;
  const stop = (sig) => {
    if (stopping) return;
    stopping = true;
    log('stopping on', sig);
    server.close(() => finish(0));
    server.closeIdleConnections();
    for (const ac of inflight) ac.abort(new ApiError('node is shutting down'));
    setTimeout(() => server.closeAllConnections(), 1000).unref();
    setTimeout(() => finish(0), 3000).unref();
  };
  let finished = false;
  const finish = async (code) => {
    if (finished) return;
    finished = true;
    try {
      await store.close();
    } catch {
      // nothing to flush
    }
    releaseLock(lock);
    process.exit(code);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

// exported for unit use by tests that want the parsers without a server
export { checkMfsPath, Mfs, parseGoDuration, parseMultipart };

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('server.mjs')) {
  main().catch((e) => {
    process.stderr.write(`Error: ${e?.stack || e}\n`);
    process.exit(1);
  });
}
