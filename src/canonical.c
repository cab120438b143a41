/*
 * canonical.c
 *		Canonical encoding of rows, keys and values
 *		(docs/canonical-encoding.md is the normative description).
 *
 * Nothing here calls a type's text output function except numeric_out
 * and enum_out, whose results do not depend on any session setting, so
 * the bytes are the same whatever TimeZone, DateStyle, IntervalStyle,
 * extra_float_digits, bytea_output or lc_* say.  Per-type facts are kept
 * in a backend-local cache that a pg_type invalidation flushes.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "canonical.h"

/* value tags (section 2 of the spec) */
#define TAG_NULL		0x00
#define TAG_BOOL		0x01
#define TAG_INT			0x02
#define TAG_NUMERIC		0x03
#define TAG_FLOAT		0x04
#define TAG_TEXT		0x05
#define TAG_BYTEA		0x06
#define TAG_TIMESTAMPTZ 0x07
#define TAG_TIMESTAMP	0x08
#define TAG_DATE		0x09
#define TAG_TIME		0x0A
#define TAG_TIMETZ		0x0B
#define TAG_INTERVAL	0x0C
#define TAG_UUID		0x0D
#define TAG_JSONB		0x0E
#define TAG_JSON		0x0F
#define TAG_ARRAY		0x10
#define TAG_COMPOSITE	0x11
#define TAG_ENUM		0x12
#define TAG_JSON_ARRAY	0x20
#define TAG_JSON_OBJECT 0x21
#define TAG_SEND		0x7F

/* microseconds and days between 2000-01-01 (PostgreSQL) and 1970-01-01 */
#define EPOCH_SHIFT_DAYS	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE))
#define EPOCH_SHIFT_USECS	(EPOCH_SHIFT_DAYS * USECS_PER_DAY)

typedef struct CsTypeEntry
{
	Oid			typid;			/* hash key: the type as found in data */
	Oid			basetype;		/* domains resolved */
	uint8		tag;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	FmgrInfo	send;			/* TAG_SEND only */
	char	   *typname;		/* TAG_SEND only */
} CsTypeEntry;

static HTAB *type_cache = NULL;
static MemoryContext type_cache_cxt = NULL;
static bool type_cache_stale = false;

/*
 * Any pg_type change: start over, it is cheap to rebuild.  The callback
 * can run in the middle of an encoding (while a lock is taken), so it only
 * marks the cache; the public entry points drop it before they begin.
 */
static void
type_cache_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	type_cache_stale = true;
}

static void
type_cache_refresh(void)
{
	if (type_cache_stale && type_cache != NULL)
	{
		hash_destroy(type_cache);
		type_cache = NULL;
		MemoryContextReset(type_cache_cxt);
	}
	type_cache_stale = false;
}

static uint8
tag_for_base_type(Oid base, char typtype)
{
	switch (base)
	{
		case BOOLOID:
			return TAG_BOOL;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return TAG_INT;
		case NUMERICOID:
			return TAG_NUMERIC;
		case FLOAT4OID:
		case FLOAT8OID:
			return TAG_FLOAT;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
		case CHAROID:
			return TAG_TEXT;
		case BYTEAOID:
			return TAG_BYTEA;
		case TIMESTAMPTZOID:
			return TAG_TIMESTAMPTZ;
		case TIMESTAMPOID:
			return TAG_TIMESTAMP;
		case DATEOID:
			return TAG_DATE;
		case TIMEOID:
			return TAG_TIME;
		case TIMETZOID:
			return TAG_TIMETZ;
		case INTERVALOID:
			return TAG_INTERVAL;
		case UUIDOID:
			return TAG_UUID;
		case JSONBOID:
			return TAG_JSONB;
		case JSONOID:
			return TAG_JSON;
	}
	if (typtype == TYPTYPE_ENUM)
		return TAG_ENUM;
	if (typtype == TYPTYPE_COMPOSITE)
		return TAG_COMPOSITE;
	return TAG_SEND;
}

static CsTypeEntry *
type_entry(Oid typid)
{
	CsTypeEntry *entry;
	bool		found;
	HeapTuple	tp;
	Form_pg_type typ;
	int32		typmod = -1;

	if (type_cache == NULL)
	{
		HASHCTL		ctl;

		if (type_cache_cxt == NULL)
		{
			type_cache_cxt = AllocSetContextCreate(CacheMemoryContext,
												   "chainstore type cache",
												   ALLOCSET_SMALL_SIZES);
			CacheRegisterSyscacheCallback(TYPEOID, type_cache_inval, (Datum) 0);
		}
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CsTypeEntry);
		ctl.hcxt = type_cache_cxt;
		type_cache = hash_create("chainstore types", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	entry = hash_search(type_cache, &typid, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	/* look everything up before entering, so an error leaves no half entry */
	{
		Oid			base = getBaseTypeAndTypmod(typid, &typmod);
		uint8		tag;
		Oid			sendfn = InvalidOid;
		char	   *typname = NULL;
		int16		typlen;
		bool		typbyval;
		char		typalign;

		tp = SearchSysCache1(TYPEOID, ObjectIdGetDatum(base));
		if (!HeapTupleIsValid(tp))
			elog(ERROR, "cache lookup failed for type %u", base);
		typ = (Form_pg_type) GETSTRUCT(tp);
		typlen = typ->typlen;
		typbyval = typ->typbyval;
		typalign = typ->typalign;
		if (OidIsValid(typ->typelem) && typ->typsubscript == F_ARRAY_SUBSCRIPT_HANDLER)
			tag = TAG_ARRAY;
		else
			tag = tag_for_base_type(base, typ->typtype);
		if (tag == TAG_SEND)
		{
			if (typ->typtype == TYPTYPE_PSEUDO || !OidIsValid(typ->typsend))
			{
				ReleaseSysCache(tp);
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("chainstore cannot encode values of type %s",
								format_type_be(typid)),
						 errdetail("The type has no binary send function.")));
			}
			sendfn = typ->typsend;
			typname = MemoryContextStrdup(type_cache_cxt, NameStr(typ->typname));
		}
		ReleaseSysCache(tp);

		entry = hash_search(type_cache, &typid, HASH_ENTER, &found);
		entry->basetype = base;
		entry->tag = tag;
		entry->typlen = typlen;
		entry->typbyval = typbyval;
		entry->typalign = typalign;
		entry->typname = typname;
		if (tag == TAG_SEND)
			fmgr_info_cxt(sendfn, &entry->send, type_cache_cxt);
	}
	return entry;
}

/* ---- primitive writers ---- */

static inline void
put_u8(StringInfo buf, uint8 v)
{
	appendStringInfoCharMacro(buf, (char) v);
}

static inline void
put_u32(StringInfo buf, uint32 v)
{
	char		b[4];

	b[0] = (char) (v >> 24);
	b[1] = (char) (v >> 16);
	b[2] = (char) (v >> 8);
	b[3] = (char) v;
	appendBinaryStringInfo(buf, b, 4);
}

static inline void
put_u64(StringInfo buf, uint64 v)
{
	put_u32(buf, (uint32) (v >> 32));
	put_u32(buf, (uint32) v);
}

static inline void
put_bytes(StringInfo buf, const char *p, int len)
{
	put_u32(buf, (uint32) len);
	appendBinaryStringInfo(buf, p, len);
}

/* text in the server encoding, written as UTF-8 */
static void
put_text(StringInfo buf, const char *p, int len)
{
	if (GetDatabaseEncoding() == PG_UTF8 || GetDatabaseEncoding() == PG_SQL_ASCII)
		put_bytes(buf, p, len);
	else
	{
		char	   *conv = pg_server_to_any(p, len, PG_UTF8);

		put_bytes(buf, conv, strlen(conv));
		if (conv != p)
			pfree(conv);
	}
}

static void
put_numeric(StringInfo buf, Datum num)
{
	char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, num));

	put_bytes(buf, s, strlen(s));
	pfree(s);
}

/* ---- values ---- */

static void encode_value(StringInfo buf, CsTypeEntry *te, Datum value);

static void
encode_jsonb(StringInfo buf, Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_ARRAY:
				/* a top-level scalar is stored as a one-element raw array */
				if (!v.val.array.rawScalar)
				{
					put_u8(buf, TAG_JSON_ARRAY);
					put_u32(buf, (uint32) v.val.array.nElems);
				}
				break;
			case WJB_BEGIN_OBJECT:
				put_u8(buf, TAG_JSON_OBJECT);
				put_u32(buf, (uint32) v.val.object.nPairs);
				break;
			case WJB_KEY:
				put_text(buf, v.val.string.val, v.val.string.len);
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				switch (v.type)
				{
					case jbvNull:
						put_u8(buf, TAG_NULL);
						break;
					case jbvBool:
						put_u8(buf, TAG_BOOL);
						put_u8(buf, v.val.boolean ? 1 : 0);
						break;
					case jbvNumeric:
						put_u8(buf, TAG_NUMERIC);
						put_numeric(buf, NumericGetDatum(v.val.numeric));
						break;
					case jbvString:
						put_u8(buf, TAG_TEXT);
						put_text(buf, v.val.string.val, v.val.string.len);
						break;
					default:
						elog(ERROR, "unexpected jsonb value type %d", (int) v.type);
				}
				break;
			case WJB_END_ARRAY:
			case WJB_END_OBJECT:
				break;
			default:
				elog(ERROR, "unexpected jsonb iterator token %d", (int) tok);
		}
	}
}

static void
encode_array(StringInfo buf, Datum value)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	int			ndim = ARR_NDIM(arr);
	int		   *dims = ARR_DIMS(arr);
	int		   *lbs = ARR_LBOUND(arr);
	CsTypeEntry *elem = type_entry(ARR_ELEMTYPE(arr));
	array_iter	iter;
	int			nitems = ArrayGetNItems(ndim, dims);

	put_u32(buf, (uint32) ndim);
	for (int d = 0; d < ndim; d++)
	{
		put_u32(buf, (uint32) dims[d]);
		put_u32(buf, (uint32) lbs[d]);
	}

	/* the element entry may be evicted by a nested lookup; copy what we need */
	{
		int16		typlen = elem->typlen;
		bool		typbyval = elem->typbyval;
		char		typalign = elem->typalign;
		Oid			elemtype = ARR_ELEMTYPE(arr);

		array_iter_setup(&iter, (AnyArrayType *) arr);
		for (int i = 0; i < nitems; i++)
		{
			bool		isnull;
			Datum		d = array_iter_next(&iter, &isnull, i, typlen, typbyval, typalign);

			if (isnull)
				put_u8(buf, TAG_NULL);
			else
				encode_value(buf, type_entry(elemtype), d);
		}
	}
}

static void
encode_composite(StringInfo buf, Datum value)
{
	HeapTupleHeader th = DatumGetHeapTupleHeader(value);
	TupleDesc	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(th),
											  HeapTupleHeaderGetTypMod(th));
	HeapTupleData tuple;
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	uint32		n = 0;

	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	heap_deform_tuple(&tuple, desc, values, nulls);

	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			n++;
	put_u32(buf, n);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		put_text(buf, NameStr(att->attname), strlen(NameStr(att->attname)));
		if (nulls[i])
			put_u8(buf, TAG_NULL);
		else
			encode_value(buf, type_entry(att->atttypid), values[i]);
	}
	ReleaseTupleDesc(desc);
	pfree(values);
	pfree(nulls);
}

/*
 * A send function that writes text (citext, xml, ranges of text) converts it
 * to the client's encoding.  The spec wants the bytes a UTF-8 client would
 * receive, whatever the session's client_encoding, so switch to UTF-8 for
 * the call.
 */
static bytea *
send_as_utf8(CsTypeEntry *te, Datum value)
{
	int			saved = pg_get_client_encoding();
	bytea	   *sent;

	if (saved == PG_UTF8)
		return SendFunctionCall(&te->send, value);
	if (PrepareClientEncoding(PG_UTF8) < 0 || SetClientEncoding(PG_UTF8) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
				 errmsg("cannot convert values of type %s to UTF-8", te->typname)));
	PG_TRY();
	{
		sent = SendFunctionCall(&te->send, value);
	}
	PG_FINALLY();
	{
		SetClientEncoding(saved);
	}
	PG_END_TRY();
	return sent;
}

static void
encode_value(StringInfo buf, CsTypeEntry *te, Datum value)
{
	uint8		tag = te->tag;

	put_u8(buf, tag);
	switch (tag)
	{
		case TAG_BOOL:
			put_u8(buf, DatumGetBool(value) ? 1 : 0);
			break;
		case TAG_INT:
			{
				int64		v;

				if (te->basetype == INT2OID)
					v = DatumGetInt16(value);
				else if (te->basetype == INT4OID)
					v = DatumGetInt32(value);
				else
					v = DatumGetInt64(value);
				put_u64(buf, (uint64) v);
			}
			break;
		case TAG_NUMERIC:
			put_numeric(buf, value);
			break;
		case TAG_FLOAT:
			{
				double		d = (te->basetype == FLOAT4OID) ?
					(double) DatumGetFloat4(value) : DatumGetFloat8(value);
				uint64		bits;

				if (isnan(d))
					bits = UINT64CONST(0x7FF8000000000000);
				else
					memcpy(&bits, &d, sizeof(bits));
				put_u64(buf, bits);
			}
			break;
		case TAG_TEXT:
			if (te->basetype == NAMEOID)
			{
				Name		nm = DatumGetName(value);

				put_text(buf, NameStr(*nm), strlen(NameStr(*nm)));
			}
			else if (te->basetype == CHAROID)
			{
				char		c = DatumGetChar(value);

				put_text(buf, &c, c == '\0' ? 0 : 1);
			}
			else
			{
				text	   *t = DatumGetTextPP(value);

				put_text(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case TAG_JSON:
			{
				text	   *t = DatumGetTextPP(value);

				put_text(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case TAG_BYTEA:
			{
				bytea	   *b = DatumGetByteaPP(value);

				put_bytes(buf, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
			}
			break;
		case TAG_TIMESTAMPTZ:
		case TAG_TIMESTAMP:
			{
				int64		ts = DatumGetInt64(value);

				if (!TIMESTAMP_NOT_FINITE(ts))
					ts += EPOCH_SHIFT_USECS;
				put_u64(buf, (uint64) ts);
			}
			break;
		case TAG_DATE:
			{
				int32		d = DatumGetDateADT(value);

				if (!DATE_NOT_FINITE(d))
					d += (int32) EPOCH_SHIFT_DAYS;
				put_u32(buf, (uint32) d);
			}
			break;
		case TAG_TIME:
			put_u64(buf, (uint64) DatumGetTimeADT(value));
			break;
		case TAG_TIMETZ:
			{
				TimeTzADT  *t = DatumGetTimeTzADTP(value);

				put_u64(buf, (uint64) t->time);
				/* PostgreSQL stores seconds west of UTC; we write east */
				put_u32(buf, (uint32) (-t->zone));
			}
			break;
		case TAG_INTERVAL:
			{
				Interval   *iv = DatumGetIntervalP(value);

				put_u32(buf, (uint32) iv->month);
				put_u32(buf, (uint32) iv->day);
				put_u64(buf, (uint64) iv->time);
			}
			break;
		case TAG_UUID:
			appendBinaryStringInfo(buf, (char *) DatumGetUUIDP(value)->data, UUID_LEN);
			break;
		case TAG_JSONB:
			encode_jsonb(buf, DatumGetJsonbP(value));
			break;
		case TAG_ARRAY:
			encode_array(buf, value);
			break;
		case TAG_COMPOSITE:
			encode_composite(buf, value);
			break;
		case TAG_ENUM:
			{
				char	   *label = DatumGetCString(DirectFunctionCall1(enum_out, value));

				put_text(buf, label, strlen(label));
				pfree(label);
			}
			break;
		case TAG_SEND:
			{
				bytea	   *sent = send_as_utf8(te, value);

				put_text(buf, te->typname, strlen(te->typname));
				put_bytes(buf, VARDATA(sent), VARSIZE(sent) - VARHDRSZ);
				pfree(sent);
			}
			break;
		default:
			elog(ERROR, "unexpected chainstore value tag %d", tag);
	}
}

void
cs_encode_value(StringInfo buf, Oid typid, Datum value)
{
	type_cache_refresh();
	encode_value(buf, type_entry(typid), value);
}

static void
encode_fields(StringInfo buf, const CsColumn *cols, int ncols,
			  const Datum *values, const bool *isnull)
{
	uint32		n = 0;

	for (int i = 0; i < ncols; i++)
		if (!isnull[cols[i].attnum - 1])
			n++;
	put_u32(buf, n);
	for (int i = 0; i < ncols; i++)
	{
		int			a = cols[i].attnum - 1;

		if (isnull[a])
			continue;
		put_bytes(buf, cols[i].name, cols[i].namelen);
		encode_value(buf, type_entry(cols[i].typid), values[a]);
	}
}

void
cs_encode_row(StringInfo buf, const CsRelInfo *info, TupleDesc desc,
			  const Datum *values, const bool *isnull, char kind)
{
	type_cache_refresh();
	put_u8(buf, CS_FORMAT_VERSION);
	put_u8(buf, (uint8) kind);
	put_text(buf, info->label, strlen(info->label));
	if (kind == CS_KIND_DELETE)
		encode_fields(buf, info->keys, info->nkeys, values, isnull);
	else
		encode_fields(buf, info->cols, info->ncols, values, isnull);
}

void
cs_encode_key(StringInfo buf, const CsRelInfo *info,
			  const Datum *values, const bool *isnull)
{
	type_cache_refresh();
	encode_fields(buf, info->keys, info->nkeys, values, isnull);
}

/* ---- type checks and relation info ---- */

void
cs_check_type(Oid typid, const char *colname)
{
	CsTypeEntry *te;

	type_cache_refresh();
	PG_TRY();
	{
		te = type_entry(typid);
	}
	PG_CATCH();
	{
		if (colname)
			errcontext("column \"%s\"", colname);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (te->tag == TAG_ARRAY)
	{
		Oid			elem = get_element_type(te->basetype);

		cs_check_type(elem, colname);
	}
	else if (te->tag == TAG_COMPOSITE)
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(te->basetype, -1);

		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped)
				cs_check_type(att->atttypid, colname);
		}
		ReleaseTupleDesc(desc);
	}
}

static int
column_name_cmp(const void *a, const void *b)
{
	const CsColumn *x = a;
	const CsColumn *y = b;
	int			c = memcmp(x->name, y->name, Min(x->namelen, y->namelen));

	if (c != 0)
		return c;
	return x->namelen - y->namelen;
}

static void
set_column(CsColumn *col, Form_pg_attribute att)
{
	char	   *name = NameStr(att->attname);
	int			len = strlen(name);

	/* names are compared and written as UTF-8 */
	if (GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII)
	{
		name = pg_server_to_any(name, len, PG_UTF8);
		len = strlen(name);
	}
	col->attnum = att->attnum;
	col->name = pstrdup(name);
	col->namelen = len;
	col->typid = att->atttypid;
}

CsRelInfo *
cs_build_relinfo(Relation rel, int32 table_id, const char *label,
				 char **exclude, int nexclude)
{
	TupleDesc	desc = RelationGetDescr(rel);
	CsRelInfo  *info = palloc0(sizeof(CsRelInfo));
	Oid			pkoid = RelationGetPrimaryKeyIndex(rel);
	Relation	pkrel;

	if (!OidIsValid(pkoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key",
						RelationGetRelationName(rel)),
				 errhint("chainstore identifies records by their primary key.")));

	info->relid = RelationGetRelid(rel);
	info->table_id = table_id;
	info->label = pstrdup(label);
	info->cols = palloc(sizeof(CsColumn) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool		skip = att->attisdropped;

		for (int j = 0; j < nexclude && !skip; j++)
			if (strcmp(exclude[j], NameStr(att->attname)) == 0)
				skip = true;
		if (skip)
			continue;
		set_column(&info->cols[info->ncols++], att);
	}
	qsort(info->cols, info->ncols, sizeof(CsColumn), column_name_cmp);

	pkrel = relation_open(pkoid, AccessShareLock);
	info->nkeys = pkrel->rd_index->indnkeyatts;
	info->keys = palloc(sizeof(CsColumn) * info->nkeys);
	for (int i = 0; i < info->nkeys; i++)
	{
		AttrNumber	attnum = pkrel->rd_index->indkey.values[i];

		set_column(&info->keys[i], TupleDescAttr(desc, attnum - 1));
	}
	relation_close(pkrel, AccessShareLock);
	qsort(info->keys, info->nkeys, sizeof(CsColumn), column_name_cmp);
	return info;
}

/* ---- key decoding, for display and jsonb round trips ---- */

typedef struct KeyReader
{
	const unsigned char *p;
	const unsigned char *end;
} KeyReader;

static void
need(KeyReader *r, size_t n)
{
	if ((size_t) (r->end - r->p) < n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("truncated chainstore key encoding")));
}

static uint32
get_u32(KeyReader *r)
{
	uint32		v;

	need(r, 4);
	v = ((uint32) r->p[0] << 24) | ((uint32) r->p[1] << 16) |
		((uint32) r->p[2] << 8) | r->p[3];
	r->p += 4;
	return v;
}

static uint64
get_u64(KeyReader *r)
{
	uint64		hi = get_u32(r);

	return (hi << 32) | get_u32(r);
}

static void
hex_string(StringInfo out, const unsigned char *p, size_t len)
{
	appendStringInfoString(out, "\"\\\\x");
	enlargeStringInfo(out, len * 2 + 1);
	out->len += hex_encode((const char *) p, len, out->data + out->len);
	out->data[out->len] = '\0';
	appendStringInfoChar(out, '"');
}

/*
 * Render one key value as JSON text.  Integers and numerics become JSON
 * numbers, text, uuid and date/time values strings in ISO 8601 (UTC for
 * timestamptz), so that feeding the result back through the column's input
 * function gives the same value whatever the session settings.
 */
static void
key_value_json(StringInfo out, KeyReader *r)
{
	uint8		tag;

	need(r, 1);
	tag = *r->p++;
	switch (tag)
	{
		case TAG_BOOL:
			need(r, 1);
			appendStringInfoString(out, *r->p++ ? "true" : "false");
			break;
		case TAG_INT:
			appendStringInfo(out, INT64_FORMAT, (int64) get_u64(r));
			break;
		case TAG_NUMERIC:
		case TAG_TEXT:
		case TAG_ENUM:
			{
				uint32		len = get_u32(r);
				char	   *s;

				need(r, len);
				s = pnstrdup((const char *) r->p, len);
				r->p += len;
				if (tag == TAG_NUMERIC && strspn(s, "-0123456789.") == len && len > 0)
					appendStringInfoString(out, s);
				else
					escape_json(out, s);
			}
			break;
		case TAG_UUID:
			{
				char		s[37];
				int			k = 0;

				need(r, UUID_LEN);
				for (int i = 0; i < UUID_LEN; i++)
				{
					if (i == 4 || i == 6 || i == 8 || i == 10)
						s[k++] = '-';
					snprintf(s + k, 3, "%02x", r->p[i]);
					k += 2;
				}
				s[k] = '\0';
				r->p += UUID_LEN;
				escape_json(out, s);
			}
			break;
		case TAG_TIMESTAMPTZ:
		case TAG_TIMESTAMP:
		case TAG_DATE:
			{
				char		s[MAXDATELEN + 1];
				struct pg_tm tm;
				fsec_t		fsec = 0;

				if (tag == TAG_DATE)
				{
					int32		d = (int32) get_u32(r);

					if (DATE_NOT_FINITE(d))
						strlcpy(s, DATE_IS_NOBEGIN(d) ? "-infinity" : "infinity", sizeof(s));
					else
					{
						j2date(d - (int32) EPOCH_SHIFT_DAYS + POSTGRES_EPOCH_JDATE,
							   &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
						EncodeDateOnly(&tm, USE_XSD_DATES, s);
					}
				}
				else
				{
					int64		ts = (int64) get_u64(r);

					if (TIMESTAMP_NOT_FINITE(ts))
						strlcpy(s, TIMESTAMP_IS_NOBEGIN(ts) ? "-infinity" : "infinity", sizeof(s));
					else if (timestamp2tm(ts - EPOCH_SHIFT_USECS, NULL, &tm, &fsec, NULL, NULL) != 0)
						ereport(ERROR,
								(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
								 errmsg("timestamp out of range in key")));
					else if (tag == TAG_TIMESTAMPTZ)
					{
						/* a negative tm_isdst would suppress the +00:00 */
						tm.tm_isdst = 0;
						EncodeDateTime(&tm, fsec, true, 0, NULL, USE_XSD_DATES, s);
					}
					else
						EncodeDateTime(&tm, fsec, false, 0, NULL, USE_XSD_DATES, s);
				}
				escape_json(out, s);
			}
			break;
		case TAG_BYTEA:
			{
				uint32		len = get_u32(r);

				need(r, len);
				hex_string(out, r->p, len);
				r->p += len;
			}
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("key values with encoding tag 0x%02x cannot be shown as JSON", tag)));
	}
}

Jsonb *
cs_key_to_jsonb(const char *data, int len)
{
	KeyReader	r;
	StringInfoData out;
	uint32		n;

	r.p = (const unsigned char *) data;
	r.end = r.p + len;
	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	n = get_u32(&r);
	for (uint32 i = 0; i < n; i++)
	{
		uint32		namelen = get_u32(&r);
		char	   *name;

		need(&r, namelen);
		name = pnstrdup((const char *) r.p, namelen);
		r.p += namelen;
		if (i > 0)
			appendStringInfoString(&out, ", ");
		escape_json(&out, name);
		appendStringInfoString(&out, ": ");
		key_value_json(&out, &r);
	}
	if (r.p != r.end)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("trailing bytes after chainstore key encoding")));
	appendStringInfoChar(&out, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
