/*
 * chainstore.c
 *		Module entry point: settings, shared memory, worker registration and
 *		the commit hook that wakes the worker.
 *
 * chainstore makes ordinary tables tamper-evident.  The capture trigger
 * (capture.c) records every row version with a hash chain and a salted
 * Merkle leaf; seal.c groups versions into Merkle batches chained to each
 * other; the background worker (worker.c) seals and delivers batches to
 * the configured sinks.  Loaded from shared_preload_libraries it starts one
 * worker per database in chainstore.databases; loaded any other way, capture
 * and the SQL functions work and nothing is delivered.
 */
#include "postgres.h"

#include <float.h>
#include <limits.h>

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "chainstore.h"

PG_MODULE_MAGIC;

int			cs_progress_rows = 100000;
char	   *cs_databases = NULL;
int			cs_naptime_ms = 1000;
int			cs_batch_size = 10000;
int			cs_max_batch_delay_ms = 2000;
int			cs_concurrency = 8;
int			cs_connect_timeout_ms = 5000;
int			cs_request_timeout_ms = 30000;
int			cs_max_attempts = 8;
int			cs_retry_base_storage_ms = 1000;
int			cs_retry_base_chain_ms = 2000;
int			cs_retry_max_delay_ms = 300000;
int			cs_verify_delay_s = 600;
int			cs_breaker_window_s = 60;
int			cs_breaker_min_requests = 5;
double		cs_breaker_failure_ratio = 0.5;
int			cs_breaker_open_s = 30;
int			cs_breaker_close_successes = 3;
int			cs_max_endpoints = 64;
char	   *cs_secrets_dir = NULL;
int			cs_reconcile_interval_s = 300;

CsShared   *cs_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* did this transaction write versions? then wake the worker at commit */
static bool wake_at_commit = false;

void		_PG_init(void);

static Size
shared_size(void)
{
	return add_size(offsetof(CsShared, breakers),
					mul_size(sizeof(CsBreaker), cs_max_endpoints));
}

static void
cs_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("chainstore", 1);
}

static void
cs_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cs_shared = ShmemInitStruct("chainstore", shared_size(), &found);
	if (!found)
	{
		memset(cs_shared, 0, shared_size());
		cs_shared->lock = &(GetNamedLWLockTranche("chainstore"))->lock;
		cs_shared->nbreakers = cs_max_endpoints;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
cs_wake_worker(Oid dboid)
{
	Latch	   *latch = NULL;

	if (cs_shared == NULL)
		return;
	LWLockAcquire(cs_shared->lock, LW_SHARED);
	for (int i = 0; i < CS_MAX_DATABASES; i++)
		if (cs_shared->workers[i].dboid == dboid && cs_shared->workers[i].latch != NULL)
			latch = cs_shared->workers[i].latch;
	if (latch != NULL)
		SetLatch(latch);
	LWLockRelease(cs_shared->lock);
}

/* called by the capture trigger for every version it writes */
void
cs_note_capture(void)
{
	wake_at_commit = true;
}

static void
cs_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				cs_wake_worker(MyDatabaseId);
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

PG_FUNCTION_INFO_V1(chainstore_wake_worker);
Datum
chainstore_wake_worker(PG_FUNCTION_ARGS)
{
	cs_wake_worker(MyDatabaseId);
	PG_RETURN_VOID();
}

static void
register_workers(void)
{
	char	   *rawnames = pstrdup(cs_databases);
	List	   *names;
	ListCell   *lc;
	int			i = 0;

	if (!SplitIdentifierString(rawnames, ',', &names))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in chainstore.databases")));
	if (list_length(names) > CS_MAX_DATABASES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("chainstore.databases names %d databases, at most %d are supported",
						list_length(names), CS_MAX_DATABASES)));

	foreach(lc, names)
	{
		BackgroundWorker worker;
		char	   *dbname = lfirst(lc);

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		/* not on a hot standby: the worker starts once recovery has finished */
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 5;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "chainstore");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "chainstore_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "chainstore worker for database %s", dbname);
		snprintf(worker.bgw_type, BGW_MAXLEN, "chainstore worker");
		worker.bgw_main_arg = Int32GetDatum(i);
		strlcpy(worker.bgw_extra, dbname, BGW_EXTRALEN);
		RegisterBackgroundWorker(&worker);
		i++;
	}
}

void
_PG_init(void)
{
	DefineCustomIntVariable("chainstore.progress_rows",
							"Rows between progress NOTICEs of backfill and verify_table.",
							NULL, &cs_progress_rows, 100000, 1, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.naptime",
							"Longest sleep of the worker between rounds when nothing wakes it.",
							NULL, &cs_naptime_ms, 1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.batch_size",
							"Most record versions in one batch.",
							NULL, &cs_batch_size, 10000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.max_batch_delay",
							"Longest a committed version waits before it is sealed.",
							NULL, &cs_max_batch_delay_ms, 2000, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.concurrency",
							"Most deliveries the worker has in flight at once.",
							NULL, &cs_concurrency, 8, 1, 256,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.connect_timeout",
							"Connection timeout of sink requests.",
							NULL, &cs_connect_timeout_ms, 5000, 100, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.request_timeout",
							"Total timeout of one sink request.",
							NULL, &cs_request_timeout_ms, 30000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.max_attempts",
							"Attempts of a delivery step before it is dead-lettered.",
							NULL, &cs_max_attempts, 8, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.retry_base_storage",
							"First retry delay for storage sinks (IPFS); doubles per attempt.",
							NULL, &cs_retry_base_storage_ms, 1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.retry_base_chain",
							"First retry delay for chain sinks (EVM, Hedera); doubles per attempt.",
							NULL, &cs_retry_base_chain_ms, 2000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.retry_max_delay",
							"Longest retry delay.",
							NULL, &cs_retry_max_delay_ms, 300000, 10, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.verify_delay",
							"Delay before the second, delayed verification of a delivery.",
							NULL, &cs_verify_delay_s, 600, 0, 30 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.breaker_window",
							"Window over which an endpoint's failure rate is measured.",
							NULL, &cs_breaker_window_s, 60, 6, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.breaker_min_requests",
							"Requests in the window before a circuit may open.",
							NULL, &cs_breaker_min_requests, 5, 1, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("chainstore.breaker_failure_ratio",
							 "Failure ratio in the window that opens a circuit.",
							 NULL, &cs_breaker_failure_ratio, 0.5, 0.01, 1.0,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.breaker_open_time",
							"How long an open circuit waits before a half-open probe.",
							NULL, &cs_breaker_open_s, 30, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.breaker_close_successes",
							"Consecutive successful probes that close a half-open circuit.",
							NULL, &cs_breaker_close_successes, 3, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("chainstore.reconcile_interval",
							"How often the worker compares each sink's head with the local batch chain.",
							"Also done when the worker starts and for every new sink; 0 turns reconciliation off.",
							&cs_reconcile_interval_s, 300, 0, 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("chainstore.secrets_dir",
							   "Directory of secret files named by sink options (tokens, keys).",
							   "Only superusers can see or set it; the files are read by the worker.",
							   &cs_secrets_dir, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);

	/*
	 * Settings that size shared memory or start workers exist only when
	 * chainstore is preloaded (PostgreSQL refuses postmaster-level settings
	 * later); loaded any other way, capture works and nothing is delivered.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomStringVariable("chainstore.databases",
								   "Databases the chainstore worker serves (comma-separated).",
								   "One worker is started per database.",
								   &cs_databases, "postgres",
								   PGC_POSTMASTER, 0, NULL, NULL, NULL);
		DefineCustomIntVariable("chainstore.max_endpoints",
								"Endpoints with a circuit breaker in shared memory.",
								NULL, &cs_max_endpoints, 64, 1, 4096,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
	}
	MarkGUCPrefixReserved("chainstore");

	RegisterXactCallback(cs_xact_callback, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cs_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cs_shmem_startup;
	register_workers();
}
