/*
 * merkle.c
 *		Batch Merkle trees (docs/canonical-encoding.md, section 6) and the
 *		SQL functions merkle_leaf, merkle_root, merkle_proof, verify_proof.
 *
 * The layout is OpenZeppelin's StandardMerkleTree so that its JavaScript
 * library computes the same root and MerkleProof.verify accepts our proofs.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "merkle.h"

void
cs_merkle_leaf(const uint8_t leaf_input[CS_HASH_LEN], uint8_t out[CS_HASH_LEN])
{
	uint8_t		inner[CS_HASH_LEN];

	cs_keccak256(leaf_input, CS_HASH_LEN, inner);
	cs_keccak256(inner, CS_HASH_LEN, out);
}

void
cs_merkle_hash_pair(const uint8_t *a, const uint8_t *b, uint8_t out[CS_HASH_LEN])
{
	uint8_t		buf[2 * CS_HASH_LEN];

	if (memcmp(a, b, CS_HASH_LEN) > 0)
	{
		const uint8_t *t = a;

		a = b;
		b = t;
	}
	memcpy(buf, a, CS_HASH_LEN);
	memcpy(buf + CS_HASH_LEN, b, CS_HASH_LEN);
	cs_keccak256(buf, sizeof(buf), out);
}

typedef struct LeafOrder
{
	const uint8_t *hash;
	int			input;
} LeafOrder;

static int
leaf_order_cmp(const void *a, const void *b)
{
	const LeafOrder *x = a;
	const LeafOrder *y = b;
	int			c = memcmp(x->hash, y->hash, CS_HASH_LEN);

	if (c != 0)
		return c;
	return x->input - y->input;
}

CsMerkleTree *
cs_merkle_build(const uint8_t (*leaves)[CS_HASH_LEN], int n)
{
	CsMerkleTree *tree;
	LeafOrder  *order;
	int			total;

	Assert(n >= 1);
	if ((Size) n > (MaxAllocSize / (2 * CS_HASH_LEN)) - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many leaves for one Merkle tree: %d", n)));

	total = 2 * n - 1;
	tree = palloc(sizeof(CsMerkleTree));
	tree->nleaves = n;
	tree->nodes = palloc(sizeof(*tree->nodes) * total);
	tree->leaf_node = palloc(sizeof(int) * n);

	order = palloc(sizeof(LeafOrder) * n);
	for (int i = 0; i < n; i++)
	{
		order[i].hash = leaves[i];
		order[i].input = i;
	}
	qsort(order, n, sizeof(LeafOrder), leaf_order_cmp);

	/* sorted leaf i goes to the end of the array, in reverse */
	for (int i = 0; i < n; i++)
	{
		int			node = total - 1 - i;

		memcpy(tree->nodes[node], order[i].hash, CS_HASH_LEN);
		tree->leaf_node[order[i].input] = node;
	}
	for (int k = total - 1 - n; k >= 0; k--)
		cs_merkle_hash_pair(tree->nodes[2 * k + 1], tree->nodes[2 * k + 2],
							tree->nodes[k]);
	pfree(order);
	return tree;
}

int
cs_merkle_proof(const CsMerkleTree *tree, int i, uint8_t (*proof)[CS_HASH_LEN])
{
	int			k = tree->leaf_node[i];
	int			len = 0;

	while (k > 0)
	{
		int			sibling = (k % 2 == 1) ? k + 1 : k - 1;

		memcpy(proof[len++], tree->nodes[sibling], CS_HASH_LEN);
		k = (k - 1) / 2;
	}
	return len;
}

bool
cs_merkle_verify(const uint8_t leaf[CS_HASH_LEN],
				 const uint8_t (*proof)[CS_HASH_LEN], int nproof,
				 const uint8_t root[CS_HASH_LEN])
{
	uint8_t		acc[CS_HASH_LEN];

	memcpy(acc, leaf, CS_HASH_LEN);
	for (int i = 0; i < nproof; i++)
		cs_merkle_hash_pair(acc, proof[i], acc);
	return memcmp(acc, root, CS_HASH_LEN) == 0;
}

/* ---- SQL interface ---- */

static void
check_hash_arg(bytea *b, const char *what)
{
	if (VARSIZE_ANY_EXHDR(b) != CS_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be %d bytes, not %d", what, CS_HASH_LEN,
						(int) VARSIZE_ANY_EXHDR(b))));
}

static bytea *
hash_bytea(const uint8_t *h)
{
	bytea	   *result = palloc(VARHDRSZ + CS_HASH_LEN);

	SET_VARSIZE(result, VARHDRSZ + CS_HASH_LEN);
	memcpy(VARDATA(result), h, CS_HASH_LEN);
	return result;
}

/*
 * Unpack a one-dimensional bytea[] of 32-byte hashes; NULL elements and
 * wrong lengths are errors.
 */
static uint8_t (*
				unpack_hashes(ArrayType *arr, const char *what, int *n))[CS_HASH_LEN]
{
	Datum	   *elems;
	bool	   *nulls;
	int			count;
	uint8_t		(*out)[CS_HASH_LEN];

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	deconstruct_array(arr, BYTEAOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &count);
	out = palloc(sizeof(*out) * Max(count, 1));
	for (int i = 0; i < count; i++)
	{
		bytea	   *b;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL elements", what)));
		b = DatumGetByteaPP(elems[i]);
		check_hash_arg(b, what);
		memcpy(out[i], VARDATA_ANY(b), CS_HASH_LEN);
	}
	*n = count;
	return out;
}

static ArrayType *
hashes_to_array(const uint8_t (*h)[CS_HASH_LEN], int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = PointerGetDatum(hash_bytea(h[i]));
	return construct_array(elems, n, BYTEAOID, -1, false, TYPALIGN_INT);
}

PG_FUNCTION_INFO_V1(chainstore_merkle_leaf);
Datum
chainstore_merkle_leaf(PG_FUNCTION_ARGS)
{
	bytea	   *input = PG_GETARG_BYTEA_PP(0);
	uint8_t		leaf[CS_HASH_LEN];

	check_hash_arg(input, "leaf input");
	cs_merkle_leaf((const uint8_t *) VARDATA_ANY(input), leaf);
	PG_RETURN_BYTEA_P(hash_bytea(leaf));
}

PG_FUNCTION_INFO_V1(chainstore_merkle_root);
Datum
chainstore_merkle_root(PG_FUNCTION_ARGS)
{
	int			n;
	uint8_t		(*leaves)[CS_HASH_LEN] = unpack_hashes(PG_GETARG_ARRAYTYPE_P(0), "leaves", &n);
	CsMerkleTree *tree;

	if (n == 0)
		PG_RETURN_NULL();
	tree = cs_merkle_build((const uint8_t (*)[CS_HASH_LEN]) leaves, n);
	PG_RETURN_BYTEA_P(hash_bytea(tree->nodes[0]));
}

PG_FUNCTION_INFO_V1(chainstore_merkle_proof);
Datum
chainstore_merkle_proof(PG_FUNCTION_ARGS)
{
	int			n;
	uint8_t		(*leaves)[CS_HASH_LEN] = unpack_hashes(PG_GETARG_ARRAYTYPE_P(0), "leaves", &n);
	bytea	   *leaf = PG_GETARG_BYTEA_PP(1);
	CsMerkleTree *tree;
	uint8_t		proof[CS_MERKLE_MAX_DEPTH][CS_HASH_LEN];
	int			found = -1;
	int			len;

	check_hash_arg(leaf, "leaf");
	for (int i = 0; i < n && found < 0; i++)
		if (memcmp(leaves[i], VARDATA_ANY(leaf), CS_HASH_LEN) == 0)
			found = i;
	if (found < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("leaf is not among the given leaves")));
	tree = cs_merkle_build((const uint8_t (*)[CS_HASH_LEN]) leaves, n);
	len = cs_merkle_proof(tree, found, proof);
	PG_RETURN_ARRAYTYPE_P(hashes_to_array((const uint8_t (*)[CS_HASH_LEN]) proof, len));
}

PG_FUNCTION_INFO_V1(chainstore_verify_proof);
Datum
chainstore_verify_proof(PG_FUNCTION_ARGS)
{
	bytea	   *leaf = PG_GETARG_BYTEA_PP(0);
	int			n;
	uint8_t		(*proof)[CS_HASH_LEN] = unpack_hashes(PG_GETARG_ARRAYTYPE_P(1), "proof", &n);
	bytea	   *root = PG_GETARG_BYTEA_PP(2);

	check_hash_arg(leaf, "leaf");
	check_hash_arg(root, "root");
	PG_RETURN_BOOL(cs_merkle_verify((const uint8_t *) VARDATA_ANY(leaf),
									(const uint8_t (*)[CS_HASH_LEN]) proof, n,
									(const uint8_t *) VARDATA_ANY(root)));
}

/*
 * chainstore.proof_json(proof bytea) → jsonb array of "0x…" hex strings: the
 * manifest's form of a stored proof, built without a subquery per record.
 */
PG_FUNCTION_INFO_V1(chainstore_proof_json);
Datum
chainstore_proof_json(PG_FUNCTION_ARGS)
{
	bytea	   *proof = PG_GETARG_BYTEA_PP(0);
	const uint8_t *p = (const uint8_t *) VARDATA_ANY(proof);
	int			len = VARSIZE_ANY_EXHDR(proof);
	StringInfoData buf;

	if (len % CS_HASH_LEN != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a stored proof is a multiple of %d bytes, not %d", CS_HASH_LEN, len)));
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < len; i += CS_HASH_LEN)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, "\"0x");
		enlargeStringInfo(&buf, 2 * CS_HASH_LEN + 1);
		buf.len += hex_encode((const char *) p + i, CS_HASH_LEN, buf.data + buf.len);
		buf.data[buf.len] = '\0';
		appendStringInfoChar(&buf, '"');
	}
	appendStringInfoChar(&buf, ']');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
