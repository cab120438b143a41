// Independent CIDs for chainstore.ipfs_cid() / chainstore._ipfs_cid_chunked(),
// computed with the JS IPFS importer (ipfs-unixfs-importer, the library
// Helia and js-ipfs use), configured as Kubo's `ipfs add --cid-version=1`:
// fixed-size chunks of 262144 bytes, raw leaves, balanced layout with 174
// links per node, CIDv1, the single-chunk file reduced to its raw leaf.
//
//   node test/cid/crosscheck.mjs            # the vectors of sql/cid.sql
//   node test/cid/crosscheck.mjs --large    # also the 45.6 MB two-layer file
//   node test/cid/crosscheck.mjs --file F [--chunk N --links N]
//
// The expected values in sql/cid.sql come from this script, not from the C code.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { MemoryBlockstore } from 'blockstore-core/memory';
import { importer } from 'ipfs-unixfs-importer';
import { fixedSize } from 'ipfs-unixfs-importer/chunker';
import { balanced } from 'ipfs-unixfs-importer/layout';
import { base16 } from 'multiformats/bases/base16';
import { base32 } from 'multiformats/bases/base32';
import { base58btc } from 'multiformats/bases/base58';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { varint } from 'multiformats';

export const KUBO_CHUNK_SIZE = 262144;
export const KUBO_MAX_LINKS = 174;

/** CIDv1 string of `bytes` as `ipfs add --cid-version=1` would give it. */
export async function importerCid(bytes, { chunkSize = KUBO_CHUNK_SIZE, maxLinks = KUBO_MAX_LINKS } = {}) {
  const blockstore = new MemoryBlockstore();
  const options = {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    wrapWithDirectory: false,
    chunker: fixedSize({ chunkSize }),
    layout: balanced({ maxChildrenPerNode: maxLinks }),
  };
  let last;
  for await (const entry of importer([{ content: [bytes] }], blockstore, options)) last = entry;
  if (last === undefined) throw new Error('importer returned nothing');
  return last.cid.toString(); // multibase base32 for CIDv1
}

/** n bytes of i mod 251: no two chunks of a power-of-two size are alike. */
export function pattern(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = i % 251;
  return out;
}

/** The same bytes in SQL (pg_temp.cid_pattern, defined in sql/cid.sql). */
export const SQL_PATTERN_FUNCTION = String.raw`
CREATE FUNCTION pg_temp.cid_pattern(n integer) RETURNS bytea
    LANGUAGE sql IMMUTABLE
    RETURN substring(decode(repeat((SELECT string_agg(lpad(to_hex(b), 2, '0'), '' ORDER BY b)
                                      FROM generate_series(0, 250) b), n / 251 + 1), 'hex')
                     FROM 1 FOR n);
`;

const utf8 = (s) => new TextEncoder().encode(s);

/**
 * The vectors of sql/cid.sql.  `sql` is the input expression there; chunk
 * and links, when set, select chainstore._ipfs_cid_chunked().
 */
export const VECTORS = [
  { name: 'hello world\\n', sql: String.raw`convert_to(E'hello world\n', 'UTF8')`, bytes: utf8('hello world\n') },
  { name: 'empty', sql: String.raw`'\x'::bytea`, bytes: new Uint8Array(0) },
  { name: 'one zero byte', sql: String.raw`'\x00'::bytea`, bytes: new Uint8Array(1) },
  { name: 'json manifest', sql: String.raw`convert_to('{"batch_id":1,"root":"0x00"}', 'UTF8')`, bytes: utf8('{"batch_id":1,"root":"0x00"}') },
  { name: 'pattern 262143', n: 262143 },
  { name: 'pattern 262144 (one full chunk)', n: 262144 },
  { name: 'pattern 262145 (two leaves)', n: 262145 },
  { name: 'pattern 524288 (two full leaves)', n: 524288 },
  { name: 'pattern 1000000 (four leaves)', n: 1000000 },
  { name: 'chunked 10/16/4 (one chunk)', n: 10, chunk: 16, links: 4 },
  { name: 'chunked 65/16/4 (lone leaf under a node)', n: 65, chunk: 16, links: 4 },
  { name: 'chunked 256/16/4 (full two layers)', n: 256, chunk: 16, links: 4 },
  { name: 'chunked 257/16/4 (three layers)', n: 257, chunk: 16, links: 4 },
  { name: 'chunked 100/1/2 (seven layers)', n: 100, chunk: 1, links: 2 },
  { name: 'chunked 174001/1000/174 (175 leaves)', n: 174001, chunk: 1000, links: 174 },
  { name: 'chunked 2097153/262144/2 (4-byte varints)', n: 2097153, chunk: 262144, links: 2 },
].map((v) => (v.n === undefined ? v : { ...v, sql: `pg_temp.cid_pattern(${v.n})`, bytes: pattern(v.n) }));

/** 174 * 262144 + 1 bytes: the smallest file with a second layer at Kubo's defaults. */
export const LARGE_VECTOR = { name: 'pattern 45613057 (two layers at defaults)', n: 174 * 262144 + 1 };

export function sqlCall(v) {
  return v.chunk === undefined
    ? `chainstore.ipfs_cid(${v.sql})`
    : `chainstore._ipfs_cid_chunked(${v.sql}, ${v.chunk}, ${v.links})`;
}

/**
 * The reference answer to chainstore.cid_is_valid(): multiformats parses
 * the text, the multihash is sha2-256 with 32 bytes, and multiformats
 * encodes the same CID back to exactly this text (which rules out other
 * multibases, upper case, non-minimal varints and stray padding bits).
 */
export function referenceIsValid(text) {
  if (!(text.startsWith('Qm') || text.startsWith('b'))) return false;
  let cid;
  try {
    cid = CID.parse(text);
  } catch {
    return false;
  }
  // CID.parse() remembers the text it parsed and toString() returns it: re-encode instead
  const canonical = cid.version === 0 ? base58btc.encode(cid.bytes).slice(1) : base32.encode(cid.bytes);
  return cid.multihash.code === 0x12 && cid.multihash.size === 32 && cid.multihash.digest.length === 32 &&
    canonical === text;
}

const cat = (...parts) => Uint8Array.from(parts.flatMap((p) => (typeof p === 'number' ? [p] : [...p])));
const uv = (n) => varint.encodeTo(n, new Uint8Array(varint.encodingLength(n)));
const b32 = (bytes) => base32.encode(bytes); // 'b' + RFC 4648 lower case, no padding
const fill = (n, byte) => new Uint8Array(n).fill(byte);

/**
 * Cases for chainstore.cid_is_valid() in sql/cid.sql: [name, text, valid].
 * Texts are built here with multiformats' encoders, bytes by hand.
 */
export async function cidCases() {
  const digest = (await sha256.digest(utf8('chainstore'))).digest;
  const mh = cat(0x12, 0x20, digest);
  const raw = b32(cat(1, 0x55, mh));
  const v0 = base58btc.encode(mh).slice(1); // CIDv0 text has no multibase prefix
  // the last character of a 36-byte CID carries 3 data bits and 2 zero bits: set one of those
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const lastValue = alphabet.indexOf(raw.at(-1));
  const strayBits = raw.slice(0, -1) + alphabet[lastValue | 1];
  const cases = [
    ['v1 raw (sha2-256)', raw, true],
    ['v1 dag-pb', b32(cat(1, 0x70, mh)), true],
    ['v1 dag-cbor', b32(cat(1, 0x71, mh)), true],
    ['v1 dag-json (2-byte codec varint)', b32(cat(1, uv(0x0129), mh)), true],
    ['v0', v0, true],
    ['v0 zero digest', base58btc.encode(cat(0x12, 0x20, fill(32, 0))).slice(1), true],
    ['v0 all-ones digest', base58btc.encode(cat(0x12, 0x20, fill(32, 0xff))).slice(1), true],
    ['v1 other digest byte', b32(cat(1, 0x55, 0x12, 0x20, fill(32, 0xab))), true],
    ['empty', '', false],
    ['prefix only', 'b', false],
    ['Qm only', 'Qm', false],
    ['v1 truncated by one char', raw.slice(0, -1), false],
    ['v1 truncated by 8 chars (31-byte digest)', raw.slice(0, -8), false],
    ['v1 one char too many', raw + 'a', false],
    ['v1 5 trailing bytes', raw + 'aaaaaaaa', false],
    ['v1 with = padding', raw + '======', false],
    ['v1 stray padding bits', strayBits, false],
    ['v1 bad base32 char 1', raw.slice(0, 10) + '1' + raw.slice(11), false],
    ['v1 bad base32 char 8', raw.slice(0, 10) + '8' + raw.slice(11), false],
    ['v1 bad base32 char 0', raw.slice(0, 10) + '0' + raw.slice(11), false],
    ['v1 bad base32 char -', raw.slice(0, 10) + '-' + raw.slice(11), false],
    ['v1 non-ASCII char', raw.slice(0, 10) + '\u00e9' + raw.slice(11), false],
    ['v1 upper case (base32upper)', raw.toUpperCase(), false],
    ['v1 upper case after b', 'b' + raw.slice(1).toUpperCase(), false],
    ['v1 one upper-case char', raw.replace(/(?<=^.{10,})[a-z]/, (c) => c.toUpperCase()), false],
    ['v1 leading space', ' ' + raw, false],
    ['v1 trailing newline', raw + '\n', false],
    ['v1 multihash length 31', b32(cat(1, 0x55, 0x12, 0x1f, digest.subarray(0, 31))), false],
    ['v1 multihash length 33', b32(cat(1, 0x55, 0x12, 0x21, digest, 0)), false],
    ['v1 length 32, 31 bytes', b32(cat(1, 0x55, 0x12, 0x20, digest.subarray(0, 31))), false],
    ['v1 length 32, 33 bytes', b32(cat(1, 0x55, 0x12, 0x20, digest, 0)), false],
    ['v1 sha2-512', b32(cat(1, 0x55, 0x13, 0x40, digest, digest)), false],
    ['v1 identity multihash', b32(cat(1, 0x55, 0x00, 0x20, digest)), false],
    ['v1 blake2b-256', b32(cat(1, 0x55, uv(0xb220), 0x20, digest)), false],
    ['version 0 bytes in base32', b32(mh), false],
    ['version 2', b32(cat(2, 0x55, mh)), false],
    ['version 1 as non-minimal varint', b32(cat(0x81, 0x00, 0x55, mh)), false],
    ['codec as non-minimal varint', b32(cat(1, 0xd5, 0x00, mh)), false],
    ['codec varint of 10 bytes', b32(cat(1, fill(9, 0xff), 0x01, mh)), false],
    ['codec varint cut short', b32(cat(1, 0xff)), false],
    ['v0 truncated', v0.slice(0, -1), false],
    ['v0 one char too many', v0 + 'a', false],
    ['v0 bad base58 char 0', v0.slice(0, 10) + '0' + v0.slice(11), false],
    ['v0 bad base58 char O', v0.slice(0, 10) + 'O' + v0.slice(11), false],
    ['v0 bad base58 char l', v0.slice(0, 10) + 'l' + v0.slice(11), false],
    ['v0 with leading 1', '1' + v0, false],
    ['Qm then 44 z (beyond 0x12 0x20)', 'Qm' + 'z'.repeat(44), false],
    ['Qm then 44 1 (below 0x12 0x20)', 'Qm' + '1'.repeat(44), false],
    ['v0 bytes with z prefix (base58btc multibase)', base58btc.encode(mh), false],
    ['v1 in base58btc', base58btc.encode(cat(1, 0x55, mh)), false],
    ['v1 in base16', base16.encode(cat(1, 0x55, mh)), false],
    ['100 chars', 'b' + 'a'.repeat(99), false],
    ['101 chars', 'b' + 'a'.repeat(100), false],
  ];
  for (const [name, text, valid] of cases) {
    if (referenceIsValid(text) !== valid) throw new Error(`case ${name}: multiformats says ${!valid}`);
  }
  return cases;
}

/** A SQL literal for s: E'' with escapes when s holds a backslash, newline or non-ASCII. */
export function sqlString(s) {
  if (!/[\\\n\u0080-\uffff]/.test(s)) return `'${s.replace(/'/g, "''")}'`;
  const escaped = [...s].map((c) => {
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === "'") return "''";
    if (c.charCodeAt(0) > 127) return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
    return c;
  });
  return `E'${escaped.join('')}'`;
}

async function main(argv) {
  if (argv.includes('--cid-cases')) {
    // rows for the VALUES list of sql/cid.sql
    const cases = await cidCases();
    console.log(cases.map(([name, text, valid]) => `    (${sqlString(name)}, ${sqlString(text)}, ${valid})`).join(',\n'));
    return;
  }
  const opt = (name) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (opt('--file') !== undefined) {
    const chunk = opt('--chunk');
    const links = opt('--links');
    console.log(await importerCid(readFileSync(opt('--file')), {
      chunkSize: chunk === undefined ? KUBO_CHUNK_SIZE : Number(chunk),
      maxLinks: links === undefined ? KUBO_MAX_LINKS : Number(links),
    }));
    return;
  }
  const vectors = argv.includes('--large') ? [...VECTORS, { ...LARGE_VECTOR, bytes: pattern(LARGE_VECTOR.n) }] : VECTORS;
  for (const v of vectors) {
    const cid = await importerCid(v.bytes, v.chunk === undefined ? {} : { chunkSize: v.chunk, maxLinks: v.links });
    console.log(`${cid}\t${v.name}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
