/*
 * capture.h
 *		Capture of row versions into chainstore.versions and the outbox.
 */
#ifndef CHAINSTORE_CAPTURE_H
#define CHAINSTORE_CAPTURE_H

#include "utils/rel.h"

#include "canonical.h"
#include "hashes.h"

#define CS_SALT_LEN 16

/* the tracked-table description for rel (cached per backend); errors if untracked */
extern const CsRelInfo *cs_relinfo_for(Relation rel);

/*
 * Record one version of a record.  kind is CS_KIND_ROW or CS_KIND_DELETE,
 * op the letter stored in versions.op ('I', 'U', 'D').  With skip_same, a
 * version whose record hash equals the latest one is not written (used by
 * backfill).  Returns true if a version was written.
 */
extern bool cs_capture(const CsRelInfo *info, TupleDesc desc, Datum *values,
					   bool *nulls, char kind, char op, bool skip_same);

#endif
