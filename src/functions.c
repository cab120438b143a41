/*
 * functions.c
 *		SQL-callable helpers over tracked tables: column checks for track(),
 *		backfill, primary-key conversions, canonical bytes of a live row and
 *		per-row digests for verify_table().
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "access/stratnum.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include "capture.h"
#include "chainstore.h"

static Relation
open_tracked(Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a plain table", RelationGetRelationName(rel))));
	return rel;
}

/*
 * chainstore._check_columns(tbl regclass, exclude text[]): refuse tables
 * and columns chainstore cannot track, with the reason.
 */
PG_FUNCTION_INFO_V1(chainstore_check_columns);
Datum
chainstore_check_columns(PG_FUNCTION_ARGS)
{
	Relation	rel = relation_open(PG_GETARG_OID(0), AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *elems = NULL;
	bool	   *enulls;
	int			nexclude = 0;

	switch (rel->rd_rel->relkind)
	{
		case RELKIND_RELATION:
			break;
		case RELKIND_PARTITIONED_TABLE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot track partitioned table \"%s\"", RelationGetRelationName(rel)),
					 errhint("Track each partition instead.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a table", RelationGetRelationName(rel))));
	}
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track temporary table \"%s\"", RelationGetRelationName(rel)),
				 errdetail("Its rows disappear at the end of the session, so no anchor could be checked.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track unlogged table \"%s\"", RelationGetRelationName(rel)),
				 errdetail("An unlogged table is emptied after a crash, which capture cannot record.")));
	if (!OidIsValid(RelationGetPrimaryKeyIndex(rel)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel)),
				 errhint("chainstore identifies records by their primary key; add one first.")));

	if (!PG_ARGISNULL(1))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &enulls, &nexclude);

	/* every excluded name must be a column that is not part of the key */
	for (int j = 0; j < nexclude; j++)
	{
		char	   *name;
		AttrNumber	attnum;

		if (enulls[j])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("exclude_columns must not contain NULL")));
		name = TextDatumGetCString(elems[j]);
		attnum = get_attnum(RelationGetRelid(rel), name);
		if (attnum == InvalidAttrNumber || attnum < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of table \"%s\" does not exist",
							name, RelationGetRelationName(rel))));
	}
	{
		CsRelInfo  *info;
		char	  **exclude = palloc(sizeof(char *) * Max(nexclude, 1));

		for (int j = 0; j < nexclude; j++)
			exclude[j] = TextDatumGetCString(elems[j]);
		info = cs_build_relinfo(rel, 0, "", exclude, nexclude);
		for (int k = 0; k < info->nkeys; k++)
			for (int j = 0; j < nexclude; j++)
				if (strcmp(exclude[j], NameStr(TupleDescAttr(desc, info->keys[k].attnum - 1)->attname)) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("cannot exclude primary key column \"%s\"", exclude[j])));
		for (int i = 0; i < info->ncols; i++)
			cs_check_type(info->cols[i].typid, info->cols[i].name);
		for (int i = 0; i < info->nkeys; i++)
			cs_check_type(info->keys[i].typid, info->keys[i].name);
	}
	relation_close(rel, AccessShareLock);
	PG_RETURN_VOID();
}

/*
 * chainstore._backfill(tbl regclass) → bigint: one version for every row
 * whose current hash is not already the record's latest.  Runs a plain
 * sequential scan in the caller's snapshot with a per-row memory context.
 */
PG_FUNCTION_INFO_V1(chainstore_backfill);
Datum
chainstore_backfill(PG_FUNCTION_ARGS)
{
	Relation	rel = open_tracked(PG_GETARG_OID(0));
	TupleDesc	desc = RelationGetDescr(rel);
	const CsRelInfo *info = cs_relinfo_for(rel);
	TableScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext,
												 "chainstore backfill row",
												 ALLOCSET_DEFAULT_SIZES);
	int64		scanned = 0;
	int64		written = 0;

	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		MemoryContext old = MemoryContextSwitchTo(rowcxt);

		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		if (cs_capture(info, desc, slot->tts_values, slot->tts_isnull,
					   CS_KIND_ROW, 'I', true))
			written++;
		MemoryContextSwitchTo(old);
		MemoryContextReset(rowcxt);
		if (++scanned % cs_progress_rows == 0)
			ereport(NOTICE,
					(errmsg("chainstore backfill of \"%s\": " INT64_FORMAT " rows scanned, " INT64_FORMAT " versions written",
							RelationGetRelationName(rel), scanned, written)));
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(rowcxt);
	relation_close(rel, AccessShareLock);
	PG_RETURN_INT64(written);
}

/* ---- primary keys given as jsonb ---- */

/*
 * Turn {"col": value, ...} into key column values, through each column's
 * input function.  The object must name exactly the key columns.
 */
static void
pk_from_jsonb(Relation rel, const CsRelInfo *info, Jsonb *pk, Datum *values, bool *nulls)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			npairs;

	if (!JB_ROOT_IS_OBJECT(pk))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pk must be a JSON object such as {\"id\": 42}")));
	npairs = JB_ROOT_COUNT(pk);

	for (int i = 0; i < desc->natts; i++)
		nulls[i] = true;
	for (int k = 0; k < info->nkeys; k++)
	{
		const CsColumn *col = &info->keys[k];
		Form_pg_attribute att = TupleDescAttr(desc, col->attnum - 1);
		JsonbValue	key;
		JsonbValue *v;
		char	   *str;
		Oid			typinput;
		Oid			typioparam;

		key.type = jbvString;
		key.val.string.val = NameStr(att->attname);
		key.val.string.len = strlen(NameStr(att->attname));
		v = findJsonbValueFromContainer(&pk->root, JB_FOBJECT, &key);
		if (v == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("pk does not name key column \"%s\"", NameStr(att->attname)),
					 errdetail("The primary key of \"%s\" has %d column(s).",
							   RelationGetRelationName(rel), info->nkeys)));
		switch (v->type)
		{
			case jbvString:
				str = pnstrdup(v->val.string.val, v->val.string.len);
				break;
			case jbvNumeric:
				str = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
				break;
			case jbvBool:
				str = v->val.boolean ? "true" : "false";
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("pk value for \"%s\" must be a string, number or boolean",
								NameStr(att->attname))));
		}
		getTypeInputInfo(att->atttypid, &typinput, &typioparam);
		values[col->attnum - 1] = OidInputFunctionCall(typinput, str, typioparam, att->atttypmod);
		nulls[col->attnum - 1] = false;
	}
	if (npairs != info->nkeys)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pk has %d field(s) but the primary key of \"%s\" has %d column(s)",
						npairs, RelationGetRelationName(rel), info->nkeys)));
}

static bytea *
key_bytes(const CsRelInfo *info, Datum *values, bool *nulls)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ);
	cs_encode_key(&buf, info, values, nulls);
	SET_VARSIZE(buf.data, buf.len);
	return (bytea *) buf.data;
}

PG_FUNCTION_INFO_V1(chainstore_record_key);
Datum
chainstore_record_key(PG_FUNCTION_ARGS)
{
	Relation	rel = open_tracked(PG_GETARG_OID(0));
	const CsRelInfo *info = cs_relinfo_for(rel);
	int			natts = RelationGetDescr(rel)->natts;
	Datum	   *values = palloc0(sizeof(Datum) * natts);
	bool	   *nulls = palloc(sizeof(bool) * natts);
	bytea	   *result;

	pk_from_jsonb(rel, info, PG_GETARG_JSONB_P(1), values, nulls);
	result = key_bytes(info, values, nulls);
	relation_close(rel, AccessShareLock);
	PG_RETURN_BYTEA_P(result);
}

PG_FUNCTION_INFO_V1(chainstore_record_pk);
Datum
chainstore_record_pk(PG_FUNCTION_ARGS)
{
	bytea	   *key = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_JSONB_P(cs_key_to_jsonb(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)));
}

/*
 * Fetch the live row with the given key (NULL if absent), in the
 * relation's own layout, through a scan of its primary key index.
 */
static HeapTuple
fetch_row(Relation rel, const CsRelInfo *info, Datum *keyvalues)
{
	Relation	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	int			nkeys = idx->rd_index->indnkeyatts;
	ScanKeyData *skeys = palloc(sizeof(ScanKeyData) * nkeys);
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	HeapTuple	result = NULL;

	for (int i = 0; i < nkeys; i++)
	{
		AttrNumber	attnum = idx->rd_index->indkey.values[i];
		Oid			optype = idx->rd_opcintype[i];
		Oid			op = get_opfamily_member(idx->rd_opfamily[i], optype, optype,
											 BTEqualStrategyNumber);

		if (!OidIsValid(op))
			elog(ERROR, "no equality operator for key column %d of \"%s\"",
				 attnum, RelationGetRelationName(rel));
		ScanKeyEntryInitialize(&skeys[i], 0, i + 1, BTEqualStrategyNumber, optype,
							   idx->rd_indcollation[i], get_opcode(op),
							   keyvalues[attnum - 1]);
	}
	scan = index_beginscan(rel, idx, GetActiveSnapshot(), nkeys, 0);
	index_rescan(scan, skeys, nkeys, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
		result = ExecCopySlotHeapTuple(slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	return result;
}

/* chainstore.canonical(tbl regclass, pk jsonb) → the bytes the live row hashes to */
PG_FUNCTION_INFO_V1(chainstore_canonical);
Datum
chainstore_canonical(PG_FUNCTION_ARGS)
{
	Relation	rel = open_tracked(PG_GETARG_OID(0));
	TupleDesc	desc = RelationGetDescr(rel);
	const CsRelInfo *info = cs_relinfo_for(rel);
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	HeapTuple	row;
	StringInfoData buf;

	pk_from_jsonb(rel, info, PG_GETARG_JSONB_P(1), values, nulls);
	row = fetch_row(rel, info, values);
	if (row == NULL)
	{
		relation_close(rel, AccessShareLock);
		PG_RETURN_NULL();
	}
	heap_deform_tuple(row, desc, values, nulls);
	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ);
	cs_encode_row(&buf, info, desc, values, nulls, CS_KIND_ROW);
	SET_VARSIZE(buf.data, buf.len);
	relation_close(rel, AccessShareLock);
	PG_RETURN_BYTEA_P((bytea *) buf.data);
}

/*
 * chainstore._row_digest(tbl regclass, row record) → (record_key, encoding,
 * record_hash) for a whole-row value of the table: the per-row step of
 * verify_table().  Reports progress every chainstore.progress_rows rows of
 * one query.
 */
typedef struct DigestState
{
	int64		rows;
} DigestState;

PG_FUNCTION_INFO_V1(chainstore_row_digest);
Datum
chainstore_row_digest(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	HeapTupleHeader th = PG_GETARG_HEAPTUPLEHEADER(1);
	Relation	rel = open_tracked(relid);
	TupleDesc	desc = RelationGetDescr(rel);
	const CsRelInfo *info = cs_relinfo_for(rel);
	DigestState *state = fcinfo->flinfo->fn_extra;
	HeapTupleData tuple;
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	StringInfoData enc;
	uint8		hash[CS_HASH_LEN];
	TupleDesc	rdesc;
	Datum		out[3];
	bool		onulls[3] = {false, false, false};

	if (HeapTupleHeaderGetTypeId(th) != rel->rd_rel->reltype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("row is not of the row type of \"%s\"", RelationGetRelationName(rel))));
	if (state == NULL)
		state = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(DigestState));
	if (++state->rows % cs_progress_rows == 0)
		ereport(NOTICE,
				(errmsg("chainstore: " INT64_FORMAT " rows of \"%s\" hashed",
						state->rows, RelationGetRelationName(rel))));

	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = relid;
	tuple.t_data = th;
	heap_deform_tuple(&tuple, desc, values, nulls);

	initStringInfo(&enc);
	appendStringInfoSpaces(&enc, VARHDRSZ);
	cs_encode_row(&enc, info, desc, values, nulls, CS_KIND_ROW);
	SET_VARSIZE(enc.data, enc.len);
	cs_sha256(enc.data + VARHDRSZ, enc.len - VARHDRSZ, hash);

	if (get_call_result_type(fcinfo, NULL, &rdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	out[0] = PointerGetDatum(key_bytes(info, values, nulls));
	out[1] = PointerGetDatum(enc.data);
	{
		bytea	   *h = palloc(VARHDRSZ + CS_HASH_LEN);

		SET_VARSIZE(h, VARHDRSZ + CS_HASH_LEN);
		memcpy(VARDATA(h), hash, CS_HASH_LEN);
		out[2] = PointerGetDatum(h);
	}
	relation_close(rel, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(rdesc), out, onulls)));
}

/* chainstore._invalidate(tbl regclass): drop cached descriptions after track()/untrack() */
PG_FUNCTION_INFO_V1(chainstore_invalidate);
Datum
chainstore_invalidate(PG_FUNCTION_ARGS)
{
	CacheInvalidateRelcacheByRelid(PG_GETARG_OID(0));
	PG_RETURN_VOID();
}

/* chainstore._tombstone(tbl regclass, pk jsonb) → the deletion encoding of a record */
PG_FUNCTION_INFO_V1(chainstore_tombstone);
Datum
chainstore_tombstone(PG_FUNCTION_ARGS)
{
	Relation	rel = open_tracked(PG_GETARG_OID(0));
	TupleDesc	desc = RelationGetDescr(rel);
	const CsRelInfo *info = cs_relinfo_for(rel);
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	StringInfoData buf;

	pk_from_jsonb(rel, info, PG_GETARG_JSONB_P(1), values, nulls);
	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ);
	cs_encode_row(&buf, info, desc, values, nulls, CS_KIND_DELETE);
	SET_VARSIZE(buf.data, buf.len);
	relation_close(rel, AccessShareLock);
	PG_RETURN_BYTEA_P((bytea *) buf.data);
}

/* chainstore.canonical_value(anyelement) → the encoding of one value (tag and payload) */
PG_FUNCTION_INFO_V1(chainstore_canonical_value);
Datum
chainstore_canonical_value(PG_FUNCTION_ARGS)
{
	Oid			typid = get_fn_expr_argtype(fcinfo->flinfo, 0);
	StringInfoData buf;

	if (!OidIsValid(typid))
		elog(ERROR, "could not determine the argument type");
	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ);
	if (PG_ARGISNULL(0))
		appendStringInfoChar(&buf, '\0');	/* tag 0x00 */
	else
		cs_encode_value(&buf, typid, PG_GETARG_DATUM(0));
	SET_VARSIZE(buf.data, buf.len);
	PG_RETURN_BYTEA_P((bytea *) buf.data);
}
