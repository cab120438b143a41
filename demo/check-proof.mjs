// Checks one chainstore proof with OpenZeppelin's own Merkle tree library,
// an implementation chainstore does not share any code with.
//   node demo/check-proof.mjs ROOT LEAF_INPUT PROOF_NODE...   (hex, 0x-prefixed)
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

const [root, leafInput, ...proof] = process.argv.slice(2);
if (!root || !leafInput) {
  console.error('usage: check-proof.mjs ROOT LEAF_INPUT [PROOF_NODE...]');
  process.exit(2);
}
const ok = StandardMerkleTree.verify(root, ['bytes32'], [leafInput], proof);
console.log(`OpenZeppelin StandardMerkleTree.verify: ${ok ? 'valid' : 'INVALID'} (root ${root})`);
process.exit(ok ? 0 : 1);
