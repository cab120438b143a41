/*
 * merkle.h
 *		Merkle trees laid out like OpenZeppelin's StandardMerkleTree:
 *		keccak-256, sorted pairs, sorted leaves, array layout.
 */
#ifndef CHAINSTORE_MERKLE_H
#define CHAINSTORE_MERKLE_H

#include "hashes.h"

typedef struct CsMerkleTree
{
	int			nleaves;
	uint8_t    (*nodes)[CS_HASH_LEN];	/* 2n-1 nodes, root at 0 */
	int		   *leaf_node;		/* input leaf i sits at nodes[leaf_node[i]] */
} CsMerkleTree;

/* leaf = keccak256(keccak256(leaf_input)), leaf_input being a bytes32 */
extern void cs_merkle_leaf(const uint8_t leaf_input[CS_HASH_LEN], uint8_t out[CS_HASH_LEN]);
extern void cs_merkle_hash_pair(const uint8_t *a, const uint8_t *b, uint8_t out[CS_HASH_LEN]);

/* build over n >= 1 leaves (already leaf-hashed); result palloc'd */
extern CsMerkleTree *cs_merkle_build(const uint8_t (*leaves)[CS_HASH_LEN], int n);

/* proof of input leaf i: returns node count, writes up to 31 nodes */
extern int	cs_merkle_proof(const CsMerkleTree *tree, int i, uint8_t (*proof)[CS_HASH_LEN]);

extern bool cs_merkle_verify(const uint8_t leaf[CS_HASH_LEN],
							 const uint8_t (*proof)[CS_HASH_LEN], int nproof,
							 const uint8_t root[CS_HASH_LEN]);

#define CS_MERKLE_MAX_DEPTH 40

#endif
