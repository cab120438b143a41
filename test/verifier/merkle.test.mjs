// (b) Our tree, proofs and verification against @openzeppelin/merkle-tree's
// StandardMerkleTree with ["bytes32"] leaves (the cross-check reference; the
// verifier itself does not use that package).
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { buildTree, hashPair, keccak256, leafHash, proofForLeaf, verifyProof } from './merkle.mjs';

const hex = (b) => '0x' + Buffer.from(b).toString('hex');

function crossCheck(leafInputs) {
  const oz = StandardMerkleTree.of(leafInputs.map((x) => [hex(x)]), ['bytes32']);
  const leaves = leafInputs.map(leafHash);
  const tree = buildTree(leaves);
  assert.equal(hex(tree.root), oz.root, `root for ${leafInputs.length} leaves`);
  leafInputs.forEach((x, i) => {
    assert.equal(hex(leaves[i]), oz.leafHash([hex(x)]), 'leaf hash');
    const proof = proofForLeaf(tree, leaves[i]);
    assert.deepEqual(proof.map(hex), oz.getProof(i), `proof ${i} of ${leafInputs.length}`);
    assert.ok(verifyProof(leaves[i], proof, tree.root));
    assert.ok(StandardMerkleTree.verify(oz.root, ['bytes32'], [hex(x)], proof.map(hex)));
  });
}

test('root and proofs equal StandardMerkleTree for sizes 1..40', () => {
  for (let m = 1; m <= 40; m++) crossCheck(Array.from({ length: m }, () => randomBytes(32)));
});

test('a few structured and random sets', () => {
  // deterministic inputs, sorted-order edge cases and larger random sets
  const det = (n) => Array.from({ length: n }, (_, i) => createHash('sha256').update(`leaf ${i}`).digest());
  crossCheck(det(7));
  crossCheck([Buffer.alloc(32, 0), Buffer.alloc(32, 0xff)]);
  crossCheck(Array.from({ length: 5 }, (_, i) => Buffer.alloc(32, i)));
  for (const m of [64, 65, 100, 257]) crossCheck(Array.from({ length: m }, () => randomBytes(32)));
});

test('single-leaf tree: the root is the leaf, the proof is empty', () => {
  const leaf = leafHash(Buffer.alloc(32, 1));
  const tree = buildTree([leaf]);
  assert.deepEqual(tree.root, leaf);
  assert.deepEqual(proofForLeaf(tree, leaf), []);
});

test('hashPair sorts its arguments; tampered proofs fail', () => {
  const a = Buffer.alloc(32, 1);
  const b = Buffer.alloc(32, 2);
  assert.deepEqual(hashPair(a, b), keccak256(Buffer.concat([a, b])));
  assert.deepEqual(hashPair(b, a), keccak256(Buffer.concat([a, b])));
  const leaves = Array.from({ length: 9 }, () => leafHash(randomBytes(32)));
  const tree = buildTree(leaves);
  const proof = proofForLeaf(tree, leaves[3]);
  proof[1] = Buffer.from(proof[1]);
  proof[1][0] ^= 1;
  assert.equal(verifyProof(leaves[3], proof, tree.root), false);
});
