// merkle.mjs — hashes, chain, leaves, Merkle tree and batch chain of
// docs/canonical-encoding.md sections 3, 6 and 7.  All hashes are Buffers.

import { createHash } from 'node:crypto';
import { keccak_256 } from '@noble/hashes/sha3';

export const ZERO32 = Buffer.alloc(32);

export function sha256(...parts) {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Ethereum Keccak-256 (original 0x01 padding). */
export function keccak256(data) {
  return Buffer.from(keccak_256(Uint8Array.from(data)));
}

/** H_n = SHA256(H_{n-1} || encoding_n) */
export function chainHash(prevHash, encoding) {
  return sha256(prevHash, encoding);
}

/** leaf_input = SHA256(salt || H_n) */
export function leafInput(salt, chain) {
  return sha256(salt, chain);
}

/** leaf = KECCAK256(KECCAK256(leaf_input)): OpenZeppelin standard leaf of a bytes32. */
export function leafHash(leafInputBytes) {
  if (leafInputBytes.length !== 32) throw new Error('leaf_input must be 32 bytes');
  return keccak256(keccak256(leafInputBytes));
}

/** hashPair(a, b) = KECCAK256(min(a,b) || max(a,b)) */
export function hashPair(a, b) {
  return Buffer.compare(a, b) <= 0 ? keccak256(Buffer.concat([a, b])) : keccak256(Buffer.concat([b, a]));
}

/**
 * Build the tree over m >= 1 leaves (section 6).  Returns { nodes, root,
 * nodeOf } where nodeOf(leaf) is the node index holding that leaf.
 */
export function buildTree(leaves) {
  const m = leaves.length;
  if (m < 1) throw new Error('a Merkle tree needs at least one leaf');
  const sorted = [...leaves].sort(Buffer.compare); // ascending as uint256 = byte order
  const nodes = new Array(2 * m - 1);
  sorted.forEach((leaf, i) => {
    nodes[2 * m - 2 - i] = leaf;
  });
  for (let k = m - 2; k >= 0; k--) nodes[k] = hashPair(nodes[2 * k + 1], nodes[2 * k + 2]);
  const index = new Map();
  sorted.forEach((leaf, i) => index.set(leaf.toString('hex'), 2 * m - 2 - i));
  return {
    nodes,
    root: nodes[0],
    nodeOf: (leaf) => index.get(Buffer.from(leaf).toString('hex')),
  };
}

/** Sibling path of the leaf at node k, from the leaf up. */
export function proofForNode(nodes, k) {
  const proof = [];
  while (k > 0) {
    proof.push(k % 2 === 1 ? nodes[k + 1] : nodes[k - 1]);
    k = Math.floor((k - 1) / 2);
  }
  return proof;
}

export function proofForLeaf(tree, leaf) {
  const k = tree.nodeOf(leaf);
  if (k === undefined) throw new Error('leaf not in tree');
  return proofForNode(tree.nodes, k);
}

/** MerkleProof.verify: fold hashPair over the proof and compare with the root. */
export function verifyProof(leaf, proof, root) {
  return proof.reduce((acc, sib) => hashPair(acc, sib), Buffer.from(leaf)).equals(root);
}

/** Split a stored proof (siblings concatenated, 32 bytes each). */
export function splitProof(bytes) {
  if (bytes.length % 32 !== 0) throw new Error(`proof length ${bytes.length} is not a multiple of 32`);
  const out = [];
  for (let o = 0; o < bytes.length; o += 32) out.push(bytes.subarray(o, o + 32));
  return out;
}

const BATCH_DOMAIN = Buffer.from('chainstore-batch-v1', 'ascii'); // 19 bytes

/**
 * batch_hash = SHA256("chainstore-batch-v1" || u64 batch_id || prev_batch_hash
 *                     || root || u64 record_count || i64 sealed_at_micros)
 */
export function batchHash({ batchId, prevBatchHash, root, recordCount, sealedAtMicros }) {
  const u64 = (n) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    return b;
  };
  const i64 = Buffer.alloc(8);
  i64.writeBigInt64BE(BigInt(sealedAtMicros));
  return sha256(BATCH_DOMAIN, u64(batchId), prevBatchHash, root, u64(recordCount), i64);
}
