/*
 * capture.c
 *		The capture trigger: every INSERT, UPDATE and DELETE on a tracked
 *		table becomes a record version (canonical encoding, SHA-256 record
 *		hash, hash chain, salted Merkle leaf) plus an outbox row, in the
 *		writer's own transaction.
 *
 * The trigger writes chainstore.versions and chainstore.outbox with
 * heap_insert and index_insert directly, as catalog code does, rather than
 * through SPI: it is several times cheaper per row, and the writing role
 * needs no privilege on schema chainstore.  The previous version of a
 * record is found through the (table_id, record_key, version) index with
 * SnapshotSelf, which sees every committed version and this transaction's
 * own: concurrent writers of one record are already serialized by the row
 * lock (or the primary key's unique check) on the tracked table, so the
 * newest committed version is the one to chain to.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "capture.h"
#include "chainstore.h"
#include "merkle.h"

/* chainstore.versions columns; must match sql/chainstore--0.1.0.sql */
enum
{
	V_VERSION_ID,
	V_TABLE_ID,
	V_RECORD_KEY,
	V_VERSION,
	V_OP,
	V_RECORD_HASH,
	V_PREV_HASH,
	V_CHAIN_HASH,
	V_SALT,
	V_LEAF_INPUT,
	V_LEAF,
	V_CAPTURED_AT,
	V_TXID,
	V_NATTS
};

static const char *const version_columns[V_NATTS] = {
	"version_id", "table_id", "record_key", "version", "op", "record_hash",
	"prev_hash", "chain_hash", "salt", "leaf_input", "leaf", "captured_at", "txid"
};

/* one index of a relation we insert into directly */
typedef struct CsIndex
{
	Oid			indexoid;
	IndexInfo  *info;
} CsIndex;

typedef struct CsTarget
{
	Oid			relid;
	int			nindexes;
	CsIndex    *indexes;
} CsTarget;

/* chainstore's own relations, resolved once per backend */
static struct
{
	bool		valid;
	MemoryContext cxt;
	CsTarget	versions;
	CsTarget	outbox;
	Oid			version_key_index;
	Oid			version_seq;
} cat;

typedef struct RelCacheEntry
{
	Oid			relid;			/* hash key */
	bool		valid;
	MemoryContext cxt;
	CsRelInfo  *info;
} RelCacheEntry;

static HTAB *relinfo_cache = NULL;
static bool callbacks_registered = false;

static void
relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == cat.versions.relid || relid == cat.outbox.relid)
		cat.valid = false;
	if (relinfo_cache != NULL)
	{
		HASH_SEQ_STATUS status;
		RelCacheEntry *entry;

		hash_seq_init(&status, relinfo_cache);
		while ((entry = hash_seq_search(&status)) != NULL)
			if (!OidIsValid(relid) || entry->relid == relid)
				entry->valid = false;
	}
}

static void
register_callbacks(void)
{
	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
		callbacks_registered = true;
	}
}

static Oid
chainstore_relation(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("relation chainstore.%s does not exist", name),
				 errhint("Is the chainstore extension installed in this database?")));
	return relid;
}

static void
load_target(CsTarget *target, Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	int			i = 0;

	target->relid = relid;
	target->nindexes = list_length(indexes);
	target->indexes = palloc(sizeof(CsIndex) * Max(target->nindexes, 1));
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		IndexInfo  *ii = BuildIndexInfo(idx);

		if (ii->ii_Expressions != NIL || ii->ii_Predicate != NIL)
			elog(ERROR, "chainstore cannot maintain expression or partial index \"%s\"",
				 RelationGetRelationName(idx));
		target->indexes[i].indexoid = lfirst_oid(lc);
		target->indexes[i].info = ii;
		i++;
		index_close(idx, AccessShareLock);
	}
	table_close(rel, AccessShareLock);
}

static void
load_catalog(void)
{
	Oid			nsp;
	MemoryContext old;
	Relation	rel;
	TupleDesc	desc;

	if (cat.valid)
		return;
	register_callbacks();
	if (cat.cxt == NULL)
		cat.cxt = AllocSetContextCreate(CacheMemoryContext, "chainstore catalog",
										ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(cat.cxt);

	nsp = get_namespace_oid("chainstore", false);
	old = MemoryContextSwitchTo(cat.cxt);
	load_target(&cat.versions, chainstore_relation(nsp, "versions"));
	load_target(&cat.outbox, chainstore_relation(nsp, "outbox"));
	cat.version_key_index = chainstore_relation(nsp, "versions_record_key");
	cat.version_seq = chainstore_relation(nsp, "versions_version_id_seq");
	MemoryContextSwitchTo(old);

	/* refuse to write into a table whose shape we do not expect */
	rel = table_open(cat.versions.relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	if (desc->natts != V_NATTS)
		elog(ERROR, "chainstore.versions has %d columns, expected %d", desc->natts, V_NATTS);
	for (int i = 0; i < V_NATTS; i++)
		if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), version_columns[i]) != 0)
			elog(ERROR, "chainstore.versions column %d is \"%s\", expected \"%s\"",
				 i + 1, NameStr(TupleDescAttr(desc, i)->attname), version_columns[i]);
	table_close(rel, AccessShareLock);
	cat.valid = true;
}

/* ---- tracked-table descriptions ---- */

static Oid
tracked_owner(void)
{
	Oid			relid = chainstore_relation(get_namespace_oid("chainstore", false), "tracked");
	Oid			owner;
	Relation	rel = table_open(relid, AccessShareLock);

	owner = rel->rd_rel->relowner;
	table_close(rel, AccessShareLock);
	return owner;
}

static CsRelInfo *
read_tracked(Relation rel)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	int			ret;
	int32		table_id;
	char	   *label;
	char	  **exclude = NULL;
	int			nexclude = 0;
	bool		isnull;
	Datum		d;
	CsRelInfo  *info;
	MemoryContext caller = CurrentMemoryContext;

	Oid			save_userid;
	int			save_sec_context;

	args[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * Application roles that write a tracked table have no rights on schema
	 * chainstore: read its settings as the owner of chainstore.tracked.
	 */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(tracked_owner(), save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		ret = SPI_execute_with_args("SELECT table_id, label, exclude_columns::text[] "
									"FROM chainstore.tracked WHERE relid = $1",
									1, argtypes, args, NULL, true, 1);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading chainstore.tracked failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not tracked by chainstore",
						RelationGetRelationName(rel)),
				 errhint("Use chainstore.track() to track it.")));

	table_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	label = MemoryContextStrdup(caller, TextDatumGetCString(d));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *enulls;
		MemoryContext old = MemoryContextSwitchTo(caller);

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &enulls, &nexclude);
		exclude = palloc(sizeof(char *) * Max(nexclude, 1));
		for (int i = 0; i < nexclude; i++)
			exclude[i] = TextDatumGetCString(elems[i]);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	info = cs_build_relinfo(rel, table_id, label, exclude, nexclude);
	return info;
}

const CsRelInfo *
cs_relinfo_for(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	RelCacheEntry *entry;
	bool		found;

	register_callbacks();
	if (relinfo_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RelCacheEntry);
		ctl.hcxt = CacheMemoryContext;
		relinfo_cache = hash_create("chainstore tracked tables", 16, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(relinfo_cache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		entry->valid = false;
		entry->cxt = NULL;
		entry->info = NULL;
	}
	if (!entry->valid)
	{
		MemoryContext cxt = AllocSetContextCreate(CacheMemoryContext,
												  "chainstore tracked table",
												  ALLOCSET_SMALL_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		CsRelInfo  *info;

		PG_TRY();
		{
			info = read_tracked(rel);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(old);
			MemoryContextDelete(cxt);
			PG_RE_THROW();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);

		/* the lookup may have processed invalidations: re-find the entry */
		entry = hash_search(relinfo_cache, &relid, HASH_ENTER, &found);
		if (found && entry->cxt != NULL)
			MemoryContextDelete(entry->cxt);
		entry->cxt = cxt;
		entry->info = info;
		entry->valid = true;
	}
	return entry->info;
}

/* ---- direct inserts ---- */

static void
insert_direct(const CsTarget *target, Datum *values, bool *nulls)
{
	Relation	rel = table_open(target->relid, RowExclusiveLock);
	HeapTuple	tuple = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	TupleTableSlot *slot;

	simple_heap_insert(rel, tuple);

	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	ExecStoreHeapTuple(tuple, slot, false);
	for (int i = 0; i < target->nindexes; i++)
	{
		const CsIndex *ci = &target->indexes[i];
		Relation	idx = index_open(ci->indexoid, RowExclusiveLock);
		Datum		ivalues[INDEX_MAX_KEYS];
		bool		inulls[INDEX_MAX_KEYS];

		FormIndexDatum(ci->info, slot, NULL, ivalues, inulls);
		index_insert(idx, ivalues, inulls, &tuple->t_self, rel,
					 ci->info->ii_Unique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
					 false, ci->info);
		index_close(idx, RowExclusiveLock);
	}
	ExecDropSingleTupleTableSlot(slot);
	heap_freetuple(tuple);
	table_close(rel, RowExclusiveLock);
}

/*
 * Newest version of (table_id, key): its number and chain hash.  Returns
 * false if the record has no version yet.
 */
static bool
latest_version(int32 table_id, bytea *key, int32 *version,
			   uint8 chain[CS_HASH_LEN], uint8 record_hash[CS_HASH_LEN])
{
	Relation	rel = table_open(cat.versions.relid, AccessShareLock);
	Relation	idx = index_open(cat.version_key_index, AccessShareLock);
	ScanKeyData keys[2];
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		found = false;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(table_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_BYTEAEQ, PointerGetDatum(key));
	scan = index_beginscan(rel, idx, SnapshotSelf, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;
		bytea	   *h;

		*version = DatumGetInt32(slot_getattr(slot, V_VERSION + 1, &isnull));
		h = DatumGetByteaPP(slot_getattr(slot, V_CHAIN_HASH + 1, &isnull));
		if (VARSIZE_ANY_EXHDR(h) != CS_HASH_LEN)
			elog(ERROR, "corrupt chain hash in chainstore.versions");
		memcpy(chain, VARDATA_ANY(h), CS_HASH_LEN);
		h = DatumGetByteaPP(slot_getattr(slot, V_RECORD_HASH + 1, &isnull));
		if (VARSIZE_ANY_EXHDR(h) != CS_HASH_LEN)
			elog(ERROR, "corrupt record hash in chainstore.versions");
		memcpy(record_hash, VARDATA_ANY(h), CS_HASH_LEN);
		found = true;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

static Datum
bytea_datum(const void *p, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), p, len);
	return PointerGetDatum(b);
}

bool
cs_capture(const CsRelInfo *info, TupleDesc desc, Datum *values, bool *nulls,
		   char kind, char op, bool skip_same)
{
	StringInfoData keybuf;
	StringInfoData enc;
	bytea	   *key;
	int32		prev_version = 0;
	uint8		prev_chain[CS_HASH_LEN];
	uint8		prev_record[CS_HASH_LEN];
	uint8		record_hash[CS_HASH_LEN];
	uint8		chain[CS_HASH_LEN];
	uint8		salt[CS_SALT_LEN];
	uint8		salted[CS_SALT_LEN + CS_HASH_LEN];
	uint8		leaf_input[CS_HASH_LEN];
	uint8		leaf[CS_HASH_LEN];
	Datum		v[V_NATTS];
	bool		n[V_NATTS];
	int64		version_id;
	Datum		outbox_value[1];
	bool		outbox_null[1] = {false};

	load_catalog();

	initStringInfo(&keybuf);
	appendStringInfoSpaces(&keybuf, VARHDRSZ);
	cs_encode_key(&keybuf, info, values, nulls);
	key = (bytea *) keybuf.data;
	SET_VARSIZE(key, keybuf.len);

	initStringInfo(&enc);
	cs_encode_row(&enc, info, desc, values, nulls, kind);
	cs_sha256(enc.data, enc.len, record_hash);

	if (!latest_version(info->table_id, key, &prev_version, prev_chain, prev_record))
		memset(prev_chain, 0, CS_HASH_LEN);
	else if (skip_same && memcmp(prev_record, record_hash, CS_HASH_LEN) == 0)
		return false;

	cs_sha256_2(prev_chain, CS_HASH_LEN, enc.data, enc.len, chain);
	cs_random_bytes(salt, CS_SALT_LEN);
	memcpy(salted, salt, CS_SALT_LEN);
	memcpy(salted + CS_SALT_LEN, chain, CS_HASH_LEN);
	cs_sha256(salted, sizeof(salted), leaf_input);
	cs_merkle_leaf(leaf_input, leaf);

	version_id = nextval_internal(cat.version_seq, false);

	memset(n, 0, sizeof(n));
	v[V_VERSION_ID] = Int64GetDatum(version_id);
	v[V_TABLE_ID] = Int32GetDatum(info->table_id);
	v[V_RECORD_KEY] = PointerGetDatum(key);
	v[V_VERSION] = Int32GetDatum(prev_version + 1);
	v[V_OP] = CharGetDatum(op);
	v[V_RECORD_HASH] = bytea_datum(record_hash, CS_HASH_LEN);
	v[V_PREV_HASH] = bytea_datum(prev_chain, CS_HASH_LEN);
	v[V_CHAIN_HASH] = bytea_datum(chain, CS_HASH_LEN);
	v[V_SALT] = bytea_datum(salt, CS_SALT_LEN);
	v[V_LEAF_INPUT] = bytea_datum(leaf_input, CS_HASH_LEN);
	v[V_LEAF] = bytea_datum(leaf, CS_HASH_LEN);
	v[V_CAPTURED_AT] = TimestampTzGetDatum(GetCurrentStatementStartTimestamp());
	v[V_TXID] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	insert_direct(&cat.versions, v, n);

	outbox_value[0] = Int64GetDatum(version_id);
	insert_direct(&cat.outbox, outbox_value, outbox_null);
	cs_note_capture();
	return true;
}

/* ---- the trigger ---- */

static bool
same_key(const CsRelInfo *info, Datum *ov, bool *on, Datum *nv, bool *nn)
{
	StringInfoData a;
	StringInfoData b;

	initStringInfo(&a);
	initStringInfo(&b);
	cs_encode_key(&a, info, ov, on);
	cs_encode_key(&b, info, nv, nn);
	return a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
}

static bool
same_row(const CsRelInfo *info, TupleDesc desc, Datum *ov, bool *on, Datum *nv, bool *nn)
{
	StringInfoData a;
	StringInfoData b;

	initStringInfo(&a);
	initStringInfo(&b);
	cs_encode_row(&a, info, desc, ov, on, CS_KIND_ROW);
	cs_encode_row(&b, info, desc, nv, nn, CS_KIND_ROW);
	return a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
}

PG_FUNCTION_INFO_V1(chainstore_capture);
Datum
chainstore_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	const CsRelInfo *info;
	Datum	   *ov;
	bool	   *on;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("chainstore.capture() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("chainstore.capture() must be an AFTER ... FOR EACH ROW trigger")));

	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	info = cs_relinfo_for(rel);

	ov = palloc(sizeof(Datum) * desc->natts);
	on = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(td->tg_trigtuple, desc, ov, on);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		cs_capture(info, desc, ov, on, CS_KIND_ROW, 'I', false);
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		cs_capture(info, desc, ov, on, CS_KIND_DELETE, 'D', false);
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		Datum	   *nv = palloc(sizeof(Datum) * desc->natts);
		bool	   *nn = palloc(sizeof(bool) * desc->natts);

		heap_deform_tuple(td->tg_newtuple, desc, nv, nn);
		if (!same_key(info, ov, on, nv, nn))
		{
			/* a key change ends the old record and starts a new one */
			cs_capture(info, desc, ov, on, CS_KIND_DELETE, 'D', false);
			cs_capture(info, desc, nv, nn, CS_KIND_ROW, 'I', false);
		}
		else if (!same_row(info, desc, ov, on, nv, nn))
			cs_capture(info, desc, nv, nn, CS_KIND_ROW, 'U', false);
	}
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(chainstore_refuse_truncate);
Datum
chainstore_refuse_truncate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("chainstore.refuse_truncate() must be called as a trigger")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot truncate \"%s\": it is tracked by chainstore",
					RelationGetRelationName(td->tg_relation)),
			 errdetail("TRUNCATE fires no row triggers, so the deletions would not be recorded."),
			 errhint("DELETE the rows instead, or call chainstore.untrack() first.")));
	PG_RETURN_NULL();
}
