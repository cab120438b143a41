/*
 * canonical.h
 *		The canonical row encoding of docs/canonical-encoding.md.
 */
#ifndef CHAINSTORE_CANONICAL_H
#define CHAINSTORE_CANONICAL_H

#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#define CS_FORMAT_VERSION	0x01
#define CS_KIND_ROW			'R'
#define CS_KIND_DELETE		'D'

/* one hashed or key column, in canonical (name) order */
typedef struct CsColumn
{
	AttrNumber	attnum;			/* in the tracked relation */
	char	   *name;
	int			namelen;
	Oid			typid;
} CsColumn;

/* what the encoder needs to know about a tracked relation */
typedef struct CsRelInfo
{
	Oid			relid;
	int32		table_id;
	char	   *label;
	int			ncols;
	CsColumn   *cols;			/* hashed columns, sorted by name */
	int			nkeys;
	CsColumn   *keys;			/* primary key columns, sorted by name */
} CsRelInfo;

extern void cs_encode_value(StringInfo buf, Oid typid, Datum value);
extern void cs_encode_row(StringInfo buf, const CsRelInfo *info, TupleDesc desc,
						  const Datum *values, const bool *isnull, char kind);
extern void cs_encode_key(StringInfo buf, const CsRelInfo *info,
						  const Datum *values, const bool *isnull);

/* raise a clear error if the type cannot be encoded */
extern void cs_check_type(Oid typid, const char *colname);

/* build CsRelInfo for a relation (in CurrentMemoryContext) */
extern CsRelInfo *cs_build_relinfo(Relation rel, int32 table_id, const char *label,
								   char **exclude, int nexclude);

/* decode a key encoding into {"column": value, ...} */
extern Jsonb *cs_key_to_jsonb(const char *data, int len);

#endif
