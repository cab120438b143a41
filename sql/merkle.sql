-- Merkle trees laid out like OpenZeppelin's StandardMerkleTree
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
RESET client_min_messages;
CREATE TEMP TABLE leaves AS
SELECT i, chainstore.merkle_leaf(chainstore.sha256(i::text::bytea)) AS leaf
  FROM generate_series(1, 7) i;

-- the leaf is keccak256(keccak256(leaf_input))
SELECT chainstore.merkle_leaf(chainstore.sha256('1'))
       = chainstore.keccak256(chainstore.keccak256(chainstore.sha256('1'))) AS leaf_is_double_keccak;

-- one leaf: the root is the leaf and the proof is empty
SELECT chainstore.merkle_root(ARRAY[leaf]) = leaf AS single_root,
       cardinality(chainstore.merkle_proof(ARRAY[leaf], leaf)) AS single_proof_len
  FROM leaves WHERE i = 1;

-- two leaves: keccak of the sorted pair
SELECT chainstore.merkle_root(ARRAY[a.leaf, b.leaf])
       = chainstore.keccak256(CASE WHEN a.leaf < b.leaf THEN a.leaf || b.leaf ELSE b.leaf || a.leaf END) AS pair_root
  FROM leaves a, leaves b WHERE a.i = 1 AND b.i = 2;

-- the root does not depend on the order leaves are given in (they are sorted)
SELECT chainstore.merkle_root(array_agg(leaf ORDER BY i)) = chainstore.merkle_root(array_agg(leaf ORDER BY i DESC)) AS order_free
  FROM leaves;

-- every proof of every tree size 1..7 verifies; a wrong leaf does not
SELECT n, bool_and(chainstore.verify_proof(l.leaf, chainstore.merkle_proof(t.leaves, l.leaf), chainstore.merkle_root(t.leaves))) AS all_verify,
       bool_or(chainstore.verify_proof(chainstore.sha256('x'), chainstore.merkle_proof(t.leaves, l.leaf), chainstore.merkle_root(t.leaves))) AS wrong_leaf_verifies
  FROM generate_series(1, 7) n
  CROSS JOIN LATERAL (SELECT array_agg(leaf ORDER BY i) AS leaves FROM leaves WHERE i <= n) t
  JOIN leaves l ON l.i <= n
 GROUP BY n ORDER BY n;

-- proof lengths for 7 leaves (array layout: depth 2 or 3)
SELECT i, cardinality(chainstore.merkle_proof((SELECT array_agg(leaf ORDER BY i) FROM leaves), leaf)) AS proof_len
  FROM leaves ORDER BY leaf;

-- proof_nodes splits stored proofs
SELECT chainstore.proof_nodes(decode(repeat('11', 32) || repeat('22', 32), 'hex'))
       = ARRAY[decode(repeat('11', 32), 'hex'), decode(repeat('22', 32), 'hex')] AS split_ok,
       chainstore.proof_nodes('') = '{}'::bytea[] AS empty_ok;

-- empty input has no root
SELECT chainstore.merkle_root('{}') IS NULL AS empty_root_null;

-- bad input
SELECT chainstore.merkle_root(ARRAY['\x01'::bytea]);
SELECT chainstore.merkle_root(ARRAY[NULL::bytea]);
SELECT chainstore.merkle_root(ARRAY[ARRAY[chainstore.sha256('a')], ARRAY[chainstore.sha256('b')]]);
SELECT chainstore.merkle_proof(ARRAY[chainstore.sha256('a')], chainstore.sha256('b'));
SELECT chainstore.verify_proof('\x00', '{}', chainstore.sha256('a'));
SELECT chainstore.verify_proof(chainstore.sha256('a'), ARRAY['\x0102'::bytea], chainstore.sha256('a'));
SELECT chainstore.verify_proof(chainstore.sha256('a'), '{}', '\x00');
SELECT chainstore.merkle_leaf('\x00');
SELECT chainstore.verify_proof(NULL, '{}', NULL) IS NULL AS strict_null;
