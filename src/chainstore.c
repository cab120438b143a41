/*
 * chainstore.c
 *		Module entry point: settings.
 *
 * chainstore makes ordinary tables tamper-evident.  The capture trigger
 * (capture.c) records every row version with a hash chain and a salted
 * Merkle leaf; seal.c groups versions into Merkle batches chained to each
 * other; the SQL functions in sql/chainstore--*.sql verify them.
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "chainstore.h"

PG_MODULE_MAGIC;

int			cs_progress_rows = 100000;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("chainstore.progress_rows",
							"Rows between progress NOTICEs of backfill and verify_table.",
							NULL,
							&cs_progress_rows,
							100000, 1, INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("chainstore");
}
