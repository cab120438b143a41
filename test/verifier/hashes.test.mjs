// (a) Keccak-256 / SHA-256 vectors and the chain/leaf/batch formulas.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ZERO32, batchHash, chainHash, keccak256, leafHash, leafInput, sha256 } from './merkle.mjs';

const hex = (b) => Buffer.from(b).toString('hex');
const bytes = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('keccak256 vectors (Ethereum Keccak, not SHA3-256)', () => {
  assert.equal(hex(keccak256(Buffer.alloc(0))), 'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470');
  assert.equal(hex(keccak256(Buffer.from('abc'))), '4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45');
});

test('sha256 vectors', () => {
  assert.equal(hex(sha256(Buffer.alloc(0))), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(hex(sha256(Buffer.from('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('chain hash, leaf input and leaf follow section 3', () => {
  const enc = Buffer.from('0152', 'hex');
  assert.deepEqual(chainHash(ZERO32, enc), sha256(Buffer.concat([Buffer.alloc(32), enc])));
  const salt = Buffer.alloc(16, 7);
  const h = chainHash(ZERO32, enc);
  assert.deepEqual(leafInput(salt, h), sha256(Buffer.concat([salt, h])));
  const li = leafInput(salt, h);
  assert.deepEqual(leafHash(li), keccak256(keccak256(li)));
  assert.throws(() => leafHash(Buffer.alloc(31)));
});

test('batch hash layout of section 7', () => {
  const prev = Buffer.alloc(32, 0xaa);
  const root = Buffer.alloc(32, 0xbb);
  // "chainstore-batch-v1" (19 ASCII bytes) || u64 3 || prev || root || u64 10 || i64 -1
  const preimage = bytes(`
    636861696e73746f72652d62617463682d7631
    0000000000000003
    ${'aa'.repeat(32)}
    ${'bb'.repeat(32)}
    000000000000000a
    ffffffffffffffff`);
  assert.equal(preimage.length, 19 + 8 + 32 + 32 + 8 + 8);
  assert.deepEqual(
    batchHash({ batchId: '3', prevBatchHash: prev, root, recordCount: 10, sealedAtMicros: '-1' }),
    sha256(preimage),
  );
});
