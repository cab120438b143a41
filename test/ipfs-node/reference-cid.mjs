// Independent computation of Kubo's `ipfs add` CIDs, written from the UnixFS and
// dag-pb specifications and Kubo's balanced builder, with node:crypto only.
// It shares no code with the server (no multiformats, no ipfs-unixfs-importer),
// so agreement between the two is a real cross-check.
//
// kuboAddCid(bytes, { cidVersion, rawLeaves, chunkSize, maxLinks }) returns
// { cid, size } where size is the cumulative DAG size Kubo reports as "Size".
import { createHash } from 'node:crypto';

const sha256 = (buf) => createHash('sha256').update(buf).digest();

function varint(n) {
  let v = BigInt(n);
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

// protobuf field helpers (wire type 0 = varint, 2 = length-delimited)
const fieldVarint = (num, value) => Buffer.concat([varint((num << 3) | 0), varint(value)]);
const fieldBytes = (num, bytes) => Buffer.concat([varint((num << 3) | 2), varint(bytes.length), bytes]);

// UnixFS Data message: Type=1, Data=2, filesize=3, blocksizes=4 (repeated, not packed)
const UNIXFS_FILE = 2;
function unixfsData({ data, filesize, blocksizes }) {
  const parts = [fieldVarint(1, UNIXFS_FILE)];
  if (data !== undefined && data.length > 0) parts.push(fieldBytes(2, data));
  parts.push(fieldVarint(3, filesize));
  for (const s of blocksizes) parts.push(fieldVarint(4, s));
  return Buffer.concat(parts);
}

// dag-pb PBNode: Links (field 2) come first in the canonical encoding, then Data (field 1).
// PBLink: Hash=1, Name=2, Tsize=3. Kubo always writes Name, even when empty.
function dagPbNode(links, data) {
  const parts = [];
  for (const l of links) {
    const link = Buffer.concat([fieldBytes(1, l.cidBytes), fieldBytes(2, Buffer.alloc(0)), fieldVarint(3, l.tsize)]);
    parts.push(fieldBytes(2, link));
  }
  parts.push(fieldBytes(1, data));
  return Buffer.concat(parts);
}

const CODEC_RAW = 0x55;
const CODEC_DAG_PB = 0x70;

function cidBytes(version, codec, block) {
  const mh = Buffer.concat([Buffer.from([0x12, 0x20]), sha256(block)]);
  if (version === 0) return mh;
  return Buffer.concat([varint(1), varint(codec), mh]);
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
export function base58btc(bytes) {
  let n = BigInt('0x' + (Buffer.from(bytes).toString('hex') || '0'));
  let s = '';
  while (n > 0n) {
    s = B58[Number(n % 58n)] + s;
    n /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    s = '1' + s;
  }
  return s;
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
export function base32(bytes) {
  let bits = 0;
  let value = 0;
  let s = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      s += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) s += B32[(value << (5 - bits)) & 31];
  return s;
}

export function cidString(version, bytes) {
  return version === 0 ? base58btc(bytes) : 'b' + base32(bytes);
}

/**
 * Kubo's balanced layout (boxo ipld/unixfs/importer/balanced), rewritten:
 * the first leaf is the root; while data remains, a new root of depth d takes
 * the old root as its first child and is filled with subtrees of depth d-1.
 */
export function kuboAddCid(input, opts = {}) {
  const bytes = Buffer.from(input);
  const cidVersion = opts.cidVersion ?? 0;
  const rawLeaves = opts.rawLeaves ?? cidVersion === 1;
  const chunkSize = opts.chunkSize ?? 262144;
  const maxLinks = opts.maxLinks ?? 174;

  const chunks = [];
  for (let off = 0; off < bytes.length; off += chunkSize) chunks.push(bytes.subarray(off, off + chunkSize));
  let next = 0;
  const done = () => next >= chunks.length;
  const blocks = new Map(); // cid string -> block bytes (for optional inspection)

  // node: { cidBytes, tsize, fileSize }
  function leaf(data) {
    if (rawLeaves) {
      const c = cidBytes(1, CODEC_RAW, data);
      blocks.set(cidString(1, c), data);
      return { cidBytes: c, tsize: data.length, fileSize: data.length };
    }
    const block = dagPbNode([], unixfsData({ data, filesize: data.length, blocksizes: [] }));
    const c = cidBytes(cidVersion, CODEC_DAG_PB, block);
    blocks.set(cidString(cidVersion, c), block);
    return { cidBytes: c, tsize: block.length, fileSize: data.length };
  }

  function commit(children) {
    const fileSize = children.reduce((a, c) => a + c.fileSize, 0);
    const block = dagPbNode(children, unixfsData({ filesize: fileSize, blocksizes: children.map((c) => c.fileSize) }));
    const c = cidBytes(cidVersion, CODEC_DAG_PB, block);
    blocks.set(cidString(cidVersion, c), block);
    return { cidBytes: c, tsize: block.length + children.reduce((a, ch) => a + ch.tsize, 0), fileSize };
  }

  function fill(children, depth) {
    while (children.length < maxLinks && !done()) {
      if (depth === 1) children.push(leaf(chunks[next++]));
      else children.push(commit(fill([], depth - 1)));
    }
    return children;
  }

  let root;
  if (chunks.length === 0) {
    root = leaf(Buffer.alloc(0));
  } else {
    root = leaf(chunks[next++]);
    for (let depth = 1; !done(); depth++) root = commit(fill([root], depth));
  }
  const isRawRoot = root.cidBytes[0] === 1 && root.cidBytes[1] === CODEC_RAW;
  return {
    cid: cidString(isRawRoot ? 1 : cidVersion, root.cidBytes),
    size: root.tsize,
    blocks,
  };
}

/** Deterministic pseudo-random bytes (SHA-256 in counter mode) for test files. */
export function testBytes(length, seed = 'chainstore') {
  const out = Buffer.alloc(length);
  let off = 0;
  for (let i = 0; off < length; i++) {
    const h = sha256(Buffer.from(`${seed}:${i}`));
    off += h.copy(out, off);
  }
  return out;
}
