/*
 * seal.c
 *		chainstore.seal_batch(): move pending outbox rows into a Merkle batch.
 *
 * Sealing takes up to max_records outbox rows in version order with
 * FOR UPDATE SKIP LOCKED (so concurrent sealers take disjoint rows) and
 * deletes them, builds the tree, stores a proof per version and then, under
 * the row lock of chainstore.batch_head, appends the batch to the batch
 * chain.  The head lock is taken last and held only to commit, so two
 * sealers build their trees in parallel and link up one after the other.
 * All of it is one transaction: a sealer that fails leaves the outbox as
 * it was.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#include "merkle.h"
#include "seal.h"

#define BATCH_DOMAIN "chainstore-batch-v1"

static void
put_be64(uint8 *p, uint64 v)
{
	for (int i = 7; i >= 0; i--)
	{
		p[i] = (uint8) v;
		v >>= 8;
	}
}

void
cs_batch_hash(int64 batch_id, const uint8 prev[CS_HASH_LEN], const uint8 root[CS_HASH_LEN],
			  int64 count, TimestampTz sealed_at, uint8 out[CS_HASH_LEN])
{
	uint8		buf[sizeof(BATCH_DOMAIN) - 1 + 8 + CS_HASH_LEN * 2 + 8 + 8];
	uint8	   *p = buf;
	int64		unix_usecs = sealed_at +
		((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)) * USECS_PER_DAY;

	memcpy(p, BATCH_DOMAIN, sizeof(BATCH_DOMAIN) - 1);
	p += sizeof(BATCH_DOMAIN) - 1;
	put_be64(p, (uint64) batch_id);
	p += 8;
	memcpy(p, prev, CS_HASH_LEN);
	p += CS_HASH_LEN;
	memcpy(p, root, CS_HASH_LEN);
	p += CS_HASH_LEN;
	put_be64(p, (uint64) count);
	p += 8;
	put_be64(p, (uint64) unix_usecs);
	p += 8;
	Assert(p - buf == sizeof(buf));
	cs_sha256(buf, sizeof(buf), out);
}

static bytea *
to_bytea(const void *p, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), p, len);
	return b;
}

static const uint8 *
hash_of(Datum d, const char *what)
{
	bytea	   *b = DatumGetByteaPP(d);

	if (VARSIZE_ANY_EXHDR(b) != CS_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("chainstore: stored %s is not %d bytes", what, CS_HASH_LEN)));
	return (const uint8 *) VARDATA_ANY(b);
}

int64
cs_seal_batch(int max_records)
{
	Oid			argtypes[3];
	Datum		args[3];
	int			ret;
	uint64		n;
	int64	   *version_ids;
	uint8		(*leaves)[CS_HASH_LEN];
	CsMerkleTree *tree;
	Datum	   *id_elems;
	Datum	   *index_elems;
	Datum	   *proof_elems;
	int64		batch_id;
	uint8		prev[CS_HASH_LEN];
	uint8		batch_hash[CS_HASH_LEN];
	TimestampTz sealed_at;
	bool		isnull;

	if (max_records < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_records must be at least 1")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	argtypes[0] = INT4OID;
	args[0] = Int32GetDatum(max_records);
	ret = SPI_execute_with_args(
								"WITH taken AS ("
								"  DELETE FROM chainstore.outbox o"
								"   WHERE o.version_id IN (SELECT version_id FROM chainstore.outbox"
								"                           ORDER BY version_id LIMIT $1"
								"                           FOR UPDATE SKIP LOCKED)"
								"  RETURNING o.version_id)"
								" SELECT v.version_id, v.leaf"
								"   FROM taken JOIN chainstore.versions v USING (version_id)"
								"  ORDER BY v.version_id",
								1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "taking outbox rows failed: %s", SPI_result_code_string(ret));
	n = SPI_processed;
	if (n == 0)
	{
		SPI_finish();
		return 0;
	}

	version_ids = palloc(sizeof(int64) * n);
	leaves = palloc(sizeof(*leaves) * n);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];

		version_ids[i] = DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &isnull));
		memcpy(leaves[i], hash_of(SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &isnull), "leaf"),
			   CS_HASH_LEN);
	}

	tree = cs_merkle_build((const uint8 (*)[CS_HASH_LEN]) leaves, (int) n);

	id_elems = palloc(sizeof(Datum) * n);
	index_elems = palloc(sizeof(Datum) * n);
	proof_elems = palloc(sizeof(Datum) * n);
	for (uint64 i = 0; i < n; i++)
	{
		uint8		proof[CS_MERKLE_MAX_DEPTH][CS_HASH_LEN];
		int			len = cs_merkle_proof(tree, (int) i, proof);

		id_elems[i] = Int64GetDatum(version_ids[i]);
		/* position among the sorted leaves, 0-based */
		index_elems[i] = Int32GetDatum(2 * (int) n - 2 - tree->leaf_node[i]);
		proof_elems[i] = PointerGetDatum(to_bytea(proof, len * CS_HASH_LEN));
	}

	/*
	 * Link into the batch chain; this row lock orders concurrent sealers.
	 * The head row is created on first use rather than by the install
	 * script, so that pg_dump/restore does not meet it twice.
	 */
	ret = SPI_execute("INSERT INTO chainstore.batch_head (last_batch_id, last_batch_hash)"
					  " VALUES (0, '\\x0000000000000000000000000000000000000000000000000000000000000000')"
					  " ON CONFLICT DO NOTHING", false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "creating the batch head failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute("SELECT last_batch_id, last_batch_hash FROM chainstore.batch_head FOR UPDATE",
					  false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "chainstore.batch_head must hold exactly one row");
	batch_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) + 1;
	memcpy(prev, hash_of(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull),
						 "batch hash"), CS_HASH_LEN);

	sealed_at = GetCurrentTimestamp();
	cs_batch_hash(batch_id, prev, tree->nodes[0], (int64) n, sealed_at, batch_hash);

	{
		Oid			types[9] = {INT8OID, BYTEAOID, BYTEAOID, INT4OID, TIMESTAMPTZOID,
		BYTEAOID, INT8OID, INT4OID, PG_LSNOID};
		Datum		vals[9];

		vals[0] = Int64GetDatum(batch_id);
		vals[1] = PointerGetDatum(to_bytea(prev, CS_HASH_LEN));
		vals[2] = PointerGetDatum(to_bytea(tree->nodes[0], CS_HASH_LEN));
		vals[3] = Int32GetDatum((int32) n);
		vals[4] = TimestampTzGetDatum(sealed_at);
		vals[5] = PointerGetDatum(to_bytea(batch_hash, CS_HASH_LEN));
		vals[6] = Int64GetDatum((int64) GetSystemIdentifier());
		vals[7] = Int32GetDatum((int32) GetWALInsertionTimeLine());
		vals[8] = LSNGetDatum(GetXLogInsertRecPtr());
		ret = SPI_execute_with_args("INSERT INTO chainstore.batches"
									" (batch_id, prev_batch_hash, root, record_count, sealed_at,"
									"  batch_hash, system_identifier, timeline, seal_lsn)"
									" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
									9, types, vals, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "inserting the batch failed: %s", SPI_result_code_string(ret));
	}

	{
		Oid			types[4] = {INT8ARRAYOID, INT8OID, INT4ARRAYOID, BYTEAARRAYOID};
		Datum		vals[4];

		vals[0] = PointerGetDatum(construct_array(id_elems, (int) n, INT8OID, 8, true, TYPALIGN_DOUBLE));
		vals[1] = Int64GetDatum(batch_id);
		vals[2] = PointerGetDatum(construct_array(index_elems, (int) n, INT4OID, 4, true, TYPALIGN_INT));
		vals[3] = PointerGetDatum(construct_array(proof_elems, (int) n, BYTEAOID, -1, false, TYPALIGN_INT));
		ret = SPI_execute_with_args("INSERT INTO chainstore.proofs (version_id, batch_id, leaf_index, proof)"
									" SELECT v, $2, i, p FROM unnest($1, $3, $4) AS u(v, i, p)",
									4, types, vals, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "inserting proofs failed: %s", SPI_result_code_string(ret));
	}

	/* one delivery per enabled sink; the worker takes it from there */
	{
		Oid			types[1] = {INT8OID};
		Datum		vals[1];

		vals[0] = Int64GetDatum(batch_id);
		ret = SPI_execute_with_args("INSERT INTO chainstore.deliveries (batch_id, sink_id)"
									" SELECT $1, sink_id FROM chainstore.sinks WHERE enabled",
									1, types, vals, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "creating deliveries failed: %s", SPI_result_code_string(ret));
	}

	{
		Oid			types[2] = {INT8OID, BYTEAOID};
		Datum		vals[2];

		vals[0] = Int64GetDatum(batch_id);
		vals[1] = PointerGetDatum(to_bytea(batch_hash, CS_HASH_LEN));
		ret = SPI_execute_with_args("UPDATE chainstore.batch_head SET last_batch_id = $1, last_batch_hash = $2",
									2, types, vals, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "updating the batch head failed: %s", SPI_result_code_string(ret));
	}

	SPI_finish();
	return batch_id;
}

PG_FUNCTION_INFO_V1(chainstore_seal_batch);
Datum
chainstore_seal_batch(PG_FUNCTION_ARGS)
{
	int64		batch_id = cs_seal_batch(PG_GETARG_INT32(0));

	if (batch_id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(batch_id);
}

PG_FUNCTION_INFO_V1(chainstore_batch_hash);
Datum
chainstore_batch_hash(PG_FUNCTION_ARGS)
{
	bytea	   *prev = PG_GETARG_BYTEA_PP(1);
	bytea	   *root = PG_GETARG_BYTEA_PP(2);
	uint8		out[CS_HASH_LEN];

	if (VARSIZE_ANY_EXHDR(prev) != CS_HASH_LEN || VARSIZE_ANY_EXHDR(root) != CS_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("previous batch hash and root must be %d bytes each", CS_HASH_LEN)));
	cs_batch_hash(PG_GETARG_INT64(0), (const uint8 *) VARDATA_ANY(prev),
				  (const uint8 *) VARDATA_ANY(root), PG_GETARG_INT64(3),
				  PG_GETARG_TIMESTAMPTZ(4), out);
	PG_RETURN_BYTEA_P(to_bytea(out, CS_HASH_LEN));
}
