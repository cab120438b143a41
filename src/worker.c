/*
 * worker.c
 *		The chainstore background worker: seals batches and drives every
 *		delivery (batch x sink) through submit, verify and delayed verify.
 *
 * One worker per database in chainstore.databases, started by the
 * postmaster once recovery has finished (so it stays idle on a hot standby
 * and starts after promotion), restarted 5 s after it dies.  All progress
 * lives in tables: a restarted worker resumes where the tables say.
 *
 * A round is three short transactions around network I/O done with no
 * transaction, snapshot or lock held:
 *   1. seal what is due; claim due deliveries, building and storing each
 *      payload before it is first sent (so a crash re-sends the same bytes);
 *   2. (no transaction) pick an endpoint per delivery through the circuit
 *      breakers and run all requests at once;
 *   3. record outcomes: attestations, write-back, retries with backoff,
 *      dead letters, verifications, attempts.
 * Each round runs in a memory context that is reset afterwards, so memory
 * stays flat whatever the backlog.  Writers wake the worker at commit
 * through its latch (chainstore.c), so it does not poll hot.
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "breaker.h"
#include "chainstore.h"
#include "jsonutil.h"
#include "seal.h"
#include "sink.h"

PGDLLEXPORT void chainstore_worker_main(Datum main_arg);

static int	my_slot = -1;

/* ---- helpers shared by sink kinds ---- */

char *
cs_option_text(const char *options, const char *key, const char *dflt)
{
	char	   *v = options ? cs_json_string(options, strlen(options), key, NULL) : NULL;

	return v ? v : (dflt ? pstrdup(dflt) : NULL);
}

bool
cs_option_bool(const char *options, const char *key, bool dflt)
{
	return options ? cs_json_bool(options, strlen(options), key, dflt) : dflt;
}

/*
 * The content of secret file `name` in chainstore.secrets_dir, trimmed, or
 * NULL with *why set.  Names are plain file names, so a sink option cannot
 * reach outside the directory.  The content is never logged or stored.
 */
char *
cs_read_secret(const char *name, char **why)
{
	char		path[MAXPGPATH];
	FILE	   *f;
	char		buf[4096];
	size_t		n;

	*why = NULL;
	if (cs_secrets_dir == NULL || cs_secrets_dir[0] == '\0')
	{
		*why = pstrdup("chainstore.secrets_dir is not set");
		return NULL;
	}
	if (name[0] == '\0' || name[0] == '.' || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(name))
	{
		*why = pstrdup("secret names may only use letters, digits, '.', '_' and '-', and not start with '.'");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s", cs_secrets_dir, name);
	f = AllocateFile(path, "r");
	if (f == NULL)
	{
		*why = psprintf("secret \"%s\" cannot be read: %m", name);
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	FreeFile(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n == 0 || strpbrk(buf, "\r\n") != NULL)
	{
		explicit_bzero(buf, sizeof(buf));
		*why = psprintf("secret \"%s\" must be one non-empty line", name);
		return NULL;
	}
	{
		char	   *result = pstrdup(buf);

		explicit_bzero(buf, sizeof(buf));
		return result;
	}
}

/*
 * Sort an HTTP answer into the outcomes every sink shares: timeouts,
 * connection errors, 429 and 5xx are transient; other 4xx permanent.
 */
void
cs_classify_http(CsDelivery *d)
{
	long		status = d->req.status;

	d->endpoint_failed = false;
	if (d->req.error[0] != '\0' || status == 0)
	{
		d->outcome = CS_OUTCOME_TRANSIENT;
		d->endpoint_failed = true;
		d->detail = psprintf("%s", d->req.error[0] ? d->req.error : "no HTTP answer");
	}
	else if (status == 429 || status >= 500)
	{
		d->outcome = CS_OUTCOME_TRANSIENT;
		d->endpoint_failed = true;
		d->detail = psprintf("HTTP %ld%s%.200s", status,
							 d->req.response_len ? ": " : "", d->req.response);
	}
	else if (status >= 400 || status < 200 || status >= 300)
	{
		d->outcome = CS_OUTCOME_PERMANENT;
		d->detail = psprintf("HTTP %ld%s%.200s", status,
							 d->req.response_len ? ": " : "", d->req.response);
	}
	else
		d->outcome = CS_OUTCOME_OK;
}

static const CsSinkOps *
sink_ops(const char *kind)
{
	if (strcmp(kind, "ipfs") == 0)
		return &cs_ipfs_sink;
	return NULL;
}

/* exponential backoff with equal jitter: half fixed, half random */
static int64
backoff_ms(const CsSinkOps *ops, int attempts, int retry_after_s)
{
	double		base = ops && ops->chain ? cs_retry_base_chain_ms : cs_retry_base_storage_ms;
	double		delay = base;

	for (int i = 1; i < attempts && delay < cs_retry_max_delay_ms; i++)
		delay *= 2;
	delay = Min(delay, (double) cs_retry_max_delay_ms);
	delay = delay / 2 + pg_prng_double(&pg_global_prng_state) * delay / 2;
	if (retry_after_s >= 0)
		delay = Max(delay, retry_after_s * 1000.0);
	return (int64) delay;
}

/* ---- transaction helpers ---- */

static void
begin_tx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
commit_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	/*
	 * Send table statistics (rate-limited by pgstat itself): without them
	 * autovacuum never sees the outbox churn and plans go stale.
	 */
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static bool
extension_ready(void)
{
	int			ret = SPI_execute("SELECT 1 FROM pg_extension WHERE extname = 'chainstore'", true, 1);

	return ret == SPI_OK_SELECT && SPI_processed == 1;
}

/* ---- step 1: seal and claim ---- */

/*
 * Seal while a full batch is waiting or the oldest pending version has
 * waited chainstore.max_batch_delay; at most a few batches a round so that
 * deliveries are not starved.  Returns ms until the next seal is due, or -1.
 */
static int64
seal_due(void)
{
	for (int n = 0; n < 8; n++)
	{
		int			ret;
		bool		isnull;
		int64		pending;
		TimestampTz oldest;
		int64		waited_ms;
		Oid			types[1] = {INT4OID};
		Datum		args[1];

		args[0] = Int32GetDatum(cs_batch_size);
		/* two index probes whatever the statistics say: min() on outbox, then a key lookup */
		ret = SPI_execute_with_args("SELECT (SELECT count(*) FROM (SELECT 1 FROM chainstore.outbox LIMIT $1) s),"
									"       (SELECT v.captured_at FROM chainstore.versions v"
									"         WHERE v.version_id = (SELECT min(o.version_id) FROM chainstore.outbox o))",
									/* not read-only: it must see the batch sealed just before */
									1, types, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading the outbox failed");
		pending = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (pending == 0)
			return -1;
		oldest = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		waited_ms = isnull ? cs_max_batch_delay_ms :
			(GetCurrentTimestamp() - oldest) / 1000;
		if (pending < cs_batch_size && waited_ms < cs_max_batch_delay_ms)
			return cs_max_batch_delay_ms - waited_ms;
		cs_seal_batch(cs_batch_size);
	}
	return 0;
}

/* a text[] (sink endpoints) as C strings in CurrentMemoryContext */
static char **
text_array(Datum d, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **result;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	result = palloc(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		result[i] = TextDatumGetCString(elems[i]);
	return result;
}

static char *
spi_text(HeapTuple tup, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Due deliveries, copied into round_cxt (SPI's memory goes away at commit),
 * with their payloads built and recorded.
 */
/* deliveries whose request is on the wire; they may span several rounds */
static List *inflight = NIL;

static List *
claim_deliveries(List *checks, MemoryContext round_cxt)
{
	Oid			types[4] = {INT4OID, INT4ARRAYOID, INT8ARRAYOID, INT4ARRAYOID};
	Datum		args[4];
	int			ret;
	List	   *work = NIL;
	Datum	   *checked = palloc(sizeof(Datum) * Max(list_length(checks), 1));
	Datum	   *busy_batch = palloc(sizeof(Datum) * Max(list_length(inflight), 1));
	Datum	   *busy_sink = palloc(sizeof(Datum) * Max(list_length(inflight), 1));
	int			nchecked = 0;
	int			nbusy = 0;
	ListCell   *cl;

	foreach(cl, checks)
		checked[nchecked++] = Int32GetDatum(((CsHeadCheck *) lfirst(cl))->sink_id);
	foreach(cl, inflight)
	{
		CsDelivery *b = lfirst(cl);

		busy_batch[nbusy] = Int64GetDatum(b->batch_id);
		busy_sink[nbusy++] = Int32GetDatum(b->sink_id);
	}
	args[1] = PointerGetDatum(construct_array(checked, nchecked, INT4OID, 4, true, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(busy_batch, nbusy, INT8OID, 8, true, TYPALIGN_DOUBLE));
	args[3] = PointerGetDatum(construct_array(busy_sink, nbusy, INT4OID, 4, true, TYPALIGN_INT));

	args[0] = Int32GetDatum(Max(0, cs_concurrency - list_length(inflight)));
	ret = SPI_execute_with_args(
								"SELECT d.batch_id, d.sink_id, s.name, s.kind, s.endpoints, s.options::text,"
								"       d.state, d.attempts, d.payload, d.payload_id, d.attestation::text"
								"  FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id)"
								" WHERE s.enabled AND d.next_attempt_at <= now()"
								"   AND (d.state IN ('pending', 'in_flight', 'delivered')"
								"        OR (d.state = 'verified' AND d.delayed_verified_at IS NULL))"
								/* a sink whose head is being checked waits for the result */
								"   AND NOT d.sink_id = ANY ($2)"
								/* nor one whose request is still on the wire */
								"   AND (d.batch_id, d.sink_id) NOT IN (SELECT * FROM unnest($3::bigint[], $4::int[]))"
								/* nothing goes to a sink holding a fork nobody acknowledged */
								"   AND NOT EXISTS (SELECT 1 FROM chainstore.reconciliation r"
								"                    WHERE r.sink_id = d.sink_id AND r.status = 'fork'"
								"                      AND r.acknowledged_at IS NULL)"
								" ORDER BY d.next_attempt_at, d.batch_id LIMIT $1",
								4, types, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading due deliveries failed");

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext dcxt = AllocSetContextCreate(TopMemoryContext, "chainstore delivery",
												   ALLOCSET_SMALL_SIZES);
		MemoryContext old = MemoryContextSwitchTo(dcxt);
		CsDelivery *d = palloc0(sizeof(CsDelivery));
		bool		isnull;
		char	   *state;
		Datum		pd;

		d->cxt = dcxt;
		d->batch_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		d->sink_id = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		d->sink_name = spi_text(tup, 3);
		d->kind = spi_text(tup, 4);
		d->endpoints = text_array(SPI_getbinval(tup, desc, 5, &isnull), &d->nendpoints);
		d->options = spi_text(tup, 6);
		state = spi_text(tup, 7);
		d->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull)) + 1;
		pd = SPI_getbinval(tup, desc, 9, &isnull);
		if (!isnull)
		{
			bytea	   *b = DatumGetByteaPP(pd);

			d->payload_len = VARSIZE_ANY_EXHDR(b);
			d->payload = palloc(d->payload_len + 1);
			memcpy(d->payload, VARDATA_ANY(b), d->payload_len);
			d->payload[d->payload_len] = '\0';
		}
		d->payload_id = spi_text(tup, 10);
		d->attestation = spi_text(tup, 11);
		if (strcmp(state, "pending") == 0 || strcmp(state, "in_flight") == 0)
			d->step = CS_STEP_SUBMIT;
		else if (strcmp(state, "delivered") == 0)
			d->step = CS_STEP_VERIFY;
		else
			d->step = CS_STEP_VERIFY_DELAYED;
		MemoryContextSwitchTo(round_cxt);
		/* the list lives for the round (SPI's memory goes at commit) */
		work = lappend(work, d);
		MemoryContextSwitchTo(old);
	}

	/* build and record payloads before anything is sent */
	{
		ListCell   *lc;

		foreach(lc, work)
		{
			CsDelivery *d = lfirst(lc);
			const CsSinkOps *ops = sink_ops(d->kind);
			Oid			utypes[5] = {INT8OID, INT4OID, BYTEAOID, TEXTOID, INT4OID};
			Datum		uargs[5];
			char		unulls[5] = {' ', ' ', ' ', ' ', ' '};

			if (ops == NULL)
				continue;
			if (d->step == CS_STEP_SUBMIT && d->payload == NULL)
			{
				MemoryContext old = MemoryContextSwitchTo(d->cxt);

				ops->build_payload(d);
				MemoryContextSwitchTo(old);
			}
			uargs[0] = Int64GetDatum(d->batch_id);
			uargs[1] = Int32GetDatum(d->sink_id);
			if (d->payload)
			{
				bytea	   *b = palloc(VARHDRSZ + d->payload_len);

				SET_VARSIZE(b, VARHDRSZ + d->payload_len);
				memcpy(VARDATA(b), d->payload, d->payload_len);
				uargs[2] = PointerGetDatum(b);
			}
			else
				unulls[2] = 'n';
			if (d->payload_id)
				uargs[3] = CStringGetTextDatum(d->payload_id);
			else
				unulls[3] = 'n';
			uargs[4] = Int32GetDatum(d->attempts);
			ret = SPI_execute_with_args("UPDATE chainstore.deliveries"
										"   SET payload = coalesce(payload, $3), payload_id = coalesce(payload_id, $4),"
										"       attempts = $5,"
										"       state = CASE WHEN state = 'pending' THEN 'in_flight' ELSE state END"
										" WHERE batch_id = $1 AND sink_id = $2",
										5, utypes, uargs, unulls, false, 0);
			if (ret != SPI_OK_UPDATE)
				elog(ERROR, "recording the payload failed");
		}
	}
	return work;
}

/* ---- step 2: the network ---- */

/*
 * Put newly claimed deliveries on the wire.  Those that cannot go (every
 * endpoint's circuit open, a configuration error) are returned as finished.
 */
static List *
start_deliveries(List *work)
{
	List	   *finished = NIL;
	ListCell   *lc;

	foreach(lc, work)
	{
		CsDelivery *d = lfirst(lc);
		const CsSinkOps *ops = sink_ops(d->kind);
		MemoryContext old = MemoryContextSwitchTo(d->cxt);

		d->outcome = CS_OUTCOME_NONE;
		if (ops == NULL)
		{
			d->outcome = CS_OUTCOME_PERMANENT;
			d->detail = psprintf("sink kind \"%s\" is not supported by this build", d->kind);
		}
		else
		{
			/* failover: the first endpoint whose circuit lets a request through */
			for (int e = 0; e < d->nendpoints && d->endpoint == NULL; e++)
				if (cs_breaker_allow(d->endpoints[e]))
					d->endpoint = d->endpoints[e];
			if (d->endpoint != NULL)
			{
				ops->prepare(d);
				if (d->outcome != CS_OUTCOME_NONE)
					cs_breaker_release(d->endpoint);	/* refused before sending */
			}
		}
		if (d->endpoint != NULL && d->outcome == CS_OUTCOME_NONE)
		{
			d->req.cxt = d->cxt;
			cs_http_submit(&d->req, cs_connect_timeout_ms, cs_request_timeout_ms);
		}
		MemoryContextSwitchTo(old);

		/* the lists outlive this delivery's context: never allocate them there */
		if (d->endpoint == NULL || d->outcome != CS_OUTCOME_NONE)
			finished = lappend(finished, d);
		else
		{
			MemoryContext top = MemoryContextSwitchTo(TopMemoryContext);

			inflight = lappend(inflight, d);
			MemoryContextSwitchTo(top);
		}
	}
	return finished;
}

/* take the deliveries whose request completed off the wire, interpreted */
static List *
collect_deliveries(List *finished)
{
	List	   *still = NIL;
	ListCell   *lc;
	MemoryContext round_cxt = CurrentMemoryContext;

	foreach(lc, inflight)
	{
		CsDelivery *d = lfirst(lc);

		if (!d->req.done)
		{
			/* the in-flight list lives across rounds */
			MemoryContextSwitchTo(TopMemoryContext);
			still = lappend(still, d);
			MemoryContextSwitchTo(round_cxt);
			continue;
		}
		MemoryContextSwitchTo(d->cxt);
		sink_ops(d->kind)->interpret(d);
		cs_breaker_record(d->endpoint, !d->endpoint_failed, d->detail);
		MemoryContextSwitchTo(round_cxt);
		finished = lappend(finished, d);
	}
	list_free(inflight);
	inflight = still;
	return finished;
}

/* ---- step 3: record ---- */

static const char *step_names[] = {"submit", "verify", "verify_delayed"};

static void
record_attempt(CsDelivery *d, bool ok)
{
	Oid			types[9] = {INT8OID, INT4OID, TEXTOID, TEXTOID, FLOAT8OID, BOOLOID, INT4OID, TEXTOID,
	TIMESTAMPTZOID};
	Datum		args[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	args[0] = Int64GetDatum(d->batch_id);
	args[1] = Int32GetDatum(d->sink_id);
	args[2] = CStringGetTextDatum(step_names[d->step]);
	args[3] = CStringGetTextDatum(d->endpoint);
	args[4] = Float8GetDatum(d->req.elapsed_ms);
	args[5] = BoolGetDatum(ok);
	args[6] = Int32GetDatum((int32) d->req.status);
	if (d->req.status == 0)
		nulls[6] = 'n';
	if (d->detail && !ok)
		args[7] = CStringGetTextDatum(d->detail);
	else
		nulls[7] = 'n';
	args[8] = TimestampTzGetDatum(d->req.started_at);
	if (d->req.started_at == 0)
		nulls[8] = 'n';
	if (SPI_execute_with_args("INSERT INTO chainstore.attempts"
							  " (batch_id, sink_id, step, endpoint, started_at, duration_ms, ok, http_status, error)"
							  " VALUES ($1, $2, $3, $4, coalesce($9, now()), $5, $6, $7, $8)",
							  9, types, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "recording an attempt failed");
}

static void
record_verification(CsDelivery *d, bool ok)
{
	Oid			types[6] = {INT8OID, INT4OID, TEXTOID, TEXTOID, BOOLOID, TEXTOID};
	Datum		args[6];

	args[0] = Int64GetDatum(d->batch_id);
	args[1] = Int32GetDatum(d->sink_id);
	args[2] = CStringGetTextDatum(d->step == CS_STEP_VERIFY ? "immediate" : "delayed");
	args[3] = CStringGetTextDatum(d->endpoint);
	args[4] = BoolGetDatum(ok);
	args[5] = CStringGetTextDatum(d->detail ? d->detail : "");
	if (SPI_execute_with_args("INSERT INTO chainstore.verifications"
							  " (batch_id, sink_id, phase, endpoint, ok, detail)"
							  " VALUES ($1, $2, $3, $4, $5, $6)",
							  6, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "recording a verification failed");
}

static void
update_delivery(CsDelivery *d, const char *set_clause, int64 delay_ms)
{
	Oid			types[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, FLOAT8OID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	char	   *sql;

	args[0] = Int64GetDatum(d->batch_id);
	args[1] = Int32GetDatum(d->sink_id);
	if (d->detail)
		args[2] = CStringGetTextDatum(d->detail);
	else
		nulls[2] = 'n';
	if (d->endpoint)
		args[3] = CStringGetTextDatum(d->endpoint);
	else
		nulls[3] = 'n';
	args[4] = Float8GetDatum((double) delay_ms);
	sql = psprintf("UPDATE chainstore.deliveries SET %s,"
				   " next_attempt_at = now() + make_interval(secs => $5 / 1000)"
				   " WHERE batch_id = $1 AND sink_id = $2", set_clause);
	if (SPI_execute_with_args(sql, 5, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "updating a delivery failed");
}

static void
record_outcomes(List *work)
{
	ListCell   *lc;

	foreach(lc, work)
	{
		CsDelivery *d = lfirst(lc);
		const CsSinkOps *ops = sink_ops(d->kind);

		if (d->outcome == CS_OUTCOME_NONE)
		{
			/* every endpoint's circuit is open: try again soon, no attempt spent */
			update_delivery(d, "attempts = attempts - 1", 1000);
			continue;
		}
		if (d->endpoint)
			record_attempt(d, d->outcome == CS_OUTCOME_OK);

		switch (d->outcome)
		{
			case CS_OUTCOME_OK:
				if (d->step == CS_STEP_SUBMIT)
				{
					Oid			types[4] = {INT8OID, INT4OID, TEXTOID, TEXTOID};
					Datum		args[4];

					args[0] = Int64GetDatum(d->batch_id);
					args[1] = Int32GetDatum(d->sink_id);
					args[2] = CStringGetTextDatum(d->new_attestation);
					args[3] = CStringGetTextDatum(d->endpoint);
					/* the write-back runs afterwards, in transactions of its own */
					if (SPI_execute_with_args("UPDATE chainstore.deliveries"
											  "   SET state = 'delivered', attestation = $3::jsonb, endpoint = $4,"
											  "       delivered_at = now(), attempts = 0, next_attempt_at = now(),"
											  "       last_error = NULL, writeback_pending = true"
											  " WHERE batch_id = $1 AND sink_id = $2",
											  4, types, args, NULL, false, 0) != SPI_OK_UPDATE)
						elog(ERROR, "recording a delivery failed");
					elog(DEBUG1, "chainstore: batch " INT64_FORMAT " delivered to sink %s as %s",
						 d->batch_id, d->sink_name, d->new_attestation);
				}
				else
				{
					record_verification(d, true);
					if (d->step == CS_STEP_VERIFY)
						update_delivery(d, "state = 'verified', verified_at = now(), attempts = 0",
										(int64) cs_verify_delay_s * 1000);
					else
						update_delivery(d, "delayed_verified_at = now(), attempts = 0", 0);
				}
				break;

			case CS_OUTCOME_MISMATCH:
				record_verification(d, false);
				update_delivery(d, "state = 'mismatch', last_error = $3, last_error_at = now()", 0);
				ereport(WARNING,
						(errmsg("chainstore: batch " INT64_FORMAT " does not verify on sink %s",
								d->batch_id, d->sink_name),
						 errdetail("%s", d->detail)));
				break;

			case CS_OUTCOME_TRANSIENT:
			case CS_OUTCOME_PERMANENT:
				if (d->step != CS_STEP_SUBMIT)
				{
					/*
					 * A verification that cannot be done (node down, bad
					 * configuration) never takes back what was delivered: keep
					 * the state, record why, and keep trying, slowly once the
					 * attempts are used up.
					 */
					update_delivery(d, "last_error = $3, last_error_at = now()",
									d->attempts >= cs_max_attempts ? cs_retry_max_delay_ms :
									backoff_ms(ops, d->attempts, d->req.retry_after_s));
					break;
				}
				if (d->outcome == CS_OUTCOME_TRANSIENT && d->attempts < cs_max_attempts)
				{
					update_delivery(d, "last_error = $3, last_error_at = now()",
									backoff_ms(ops, d->attempts, d->req.retry_after_s));
					break;
				}
				update_delivery(d, "state = 'dead', last_error = $3, last_error_at = now()", 0);
				if (d->outcome == CS_OUTCOME_TRANSIENT)
					ereport(LOG,
							(errmsg("chainstore: batch " INT64_FORMAT " dead-lettered for sink %s after %d attempts",
									d->batch_id, d->sink_name, d->attempts),
							 errdetail("%s", d->detail)));
				else
					ereport(LOG,
							(errmsg("chainstore: batch " INT64_FORMAT " dead-lettered for sink %s",
									d->batch_id, d->sink_name),
							 errdetail("%s", d->detail)));
				break;

			case CS_OUTCOME_NONE:
				break;
		}
	}
}

/* ---- write-back ---- */

/*
 * Write attestations into the mapped columns, one delivery per short
 * transaction.  chainstore._writeback never waits for a row lock (SKIP
 * LOCKED), so it cannot deadlock with application transactions; rows that
 * were locked stay owed and are tried again in a later round.  An error is
 * contained in a subtransaction and reported, and does not stop the worker.
 */
static void
run_writebacks(void)
{
	List	   *todo = NIL;
	ListCell   *lc;
	int			ret;
	MemoryContext round_cxt = CurrentMemoryContext;

	begin_tx("chainstore: write-back");
	ret = SPI_execute("SELECT batch_id, sink_id, attestation::text FROM chainstore.deliveries"
					  " WHERE writeback_pending ORDER BY batch_id LIMIT 16", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading pending write-backs failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];
		int64	   *item = MemoryContextAlloc(round_cxt, sizeof(int64) * 2);

		item[0] = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		item[1] = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		{
			MemoryContext old = MemoryContextSwitchTo(round_cxt);

			todo = lappend(todo, item);
			MemoryContextSwitchTo(old);
		}
	}
	commit_tx();

	foreach(lc, todo)
	{
		int64	   *item = lfirst(lc);
		Oid			types[2] = {INT8OID, INT4OID};
		Datum		args[2];
		MemoryContext cxt = CurrentMemoryContext;
		ResourceOwner owner = CurrentResourceOwner;

		args[0] = Int64GetDatum(item[0]);
		args[1] = Int32GetDatum((int32) item[1]);
		begin_tx("chainstore: write-back");
		BeginInternalSubTransaction(NULL);
		PG_TRY();
		{
			ret = SPI_execute_with_args("UPDATE chainstore.deliveries d"
										"   SET writeback_pending = chainstore._writeback(d.batch_id, d.attestation) > 0"
										" WHERE d.batch_id = $1 AND d.sink_id = $2",
										2, types, args, NULL, false, 0);
			if (ret != SPI_OK_UPDATE)
				elog(ERROR, "write-back failed");
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
			ereport(WARNING,
					(errmsg("chainstore: write-back of batch " INT64_FORMAT " failed: %s",
							item[0], edata->message),
					 errhint("Check the write-back mapping of the tracked tables.")));
			/* do not retry a failing mapping in a loop */
			if (SPI_execute_with_args("UPDATE chainstore.deliveries SET writeback_pending = false,"
									  " last_error = 'write-back failed', last_error_at = now()"
									  " WHERE batch_id = $1 AND sink_id = $2",
									  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "recording a failed write-back failed");
		}
		PG_END_TRY();
		commit_tx();
	}
}

/* ---- reconciliation ---- */

static TimestampTz last_reconcile = 0;

static char *
head_path(const char *sink_name)
{
	return psprintf("/chainstore/" UINT64_FORMAT "/%s/%s/head.json",
					GetSystemIdentifier(), get_database_name(MyDatabaseId), sink_name);
}

/* the sinks whose head is due for a check this round (all of them at start) */
static List *
load_head_checks(MemoryContext round_cxt)
{
	List	   *checks = NIL;
	int			ret;

	bool		due;

	if (cs_reconcile_interval_s == 0)
		return NIL;				/* reconciliation is off */
	due = last_reconcile == 0 ||
		TimestampDifferenceExceeds(last_reconcile, GetCurrentTimestamp(), cs_reconcile_interval_s * 1000);

	/* all sinks when due; otherwise only sinks never checked (new ones) */
	ret = SPI_execute(due ?
					  "SELECT sink_id, name, kind, endpoints, options::text FROM chainstore.sinks WHERE enabled" :
					  "SELECT sink_id, name, kind, endpoints, options::text FROM chainstore.sinks s WHERE enabled"
					  "   AND NOT EXISTS (SELECT 1 FROM chainstore.reconciliation r WHERE r.sink_id = s.sink_id)",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading sinks failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(round_cxt);
		CsHeadCheck *h = palloc0(sizeof(CsHeadCheck));
		bool		isnull;
		const CsSinkOps *ops;

		h->sink_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		h->sink_name = spi_text(tup, 2);
		h->kind = spi_text(tup, 3);
		h->endpoints = text_array(SPI_getbinval(tup, desc, 4, &isnull), &h->nendpoints);
		h->options = spi_text(tup, 5);
		h->path = head_path(h->sink_name);
		ops = sink_ops(h->kind);
		if (ops != NULL && ops->prepare_head != NULL)
			checks = lappend(checks, h);
		MemoryContextSwitchTo(old);
	}
	if (due)
		last_reconcile = GetCurrentTimestamp();
	return checks;
}

/* run head reads or writes (no transaction open) */
static void
send_heads(List *checks)
{
	CsHttpRequest **reqs = palloc(sizeof(CsHttpRequest *) * Max(list_length(checks), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, checks)
	{
		CsHeadCheck *h = lfirst(lc);

		h->result = CS_HEAD_UNKNOWN;
		for (int e = 0; e < h->nendpoints && h->endpoint == NULL; e++)
			if (cs_breaker_allow(h->endpoints[e]))
				h->endpoint = h->endpoints[e];
		if (h->endpoint == NULL)
		{
			h->detail = pstrdup("every endpoint's circuit is open");
			continue;
		}
		sink_ops(h->kind)->prepare_head(h);
		reqs[n++] = &h->req;
	}
	/* small side requests: a short timeout, so a hanging sink costs little */
	if (n > 0)
		cs_http_perform(reqs, n, cs_connect_timeout_ms, Min(cs_request_timeout_ms, 5000));
	foreach(lc, checks)
	{
		CsHeadCheck *h = lfirst(lc);
		bool		transport_ok;

		if (h->endpoint == NULL || !h->req.done)
			continue;
		transport_ok = h->req.error[0] == '\0' && h->req.status != 0 && h->req.status < 500;
		if (!h->writing)
		{
			sink_ops(h->kind)->interpret_head(h);
			transport_ok = transport_ok || h->result != CS_HEAD_UNKNOWN;
		}
		else if (h->req.status != 200)
			elog(DEBUG1, "chainstore: writing the head of sink %s failed: %s",
				 h->sink_name, h->req.error[0] ? h->req.error : h->req.response);
		cs_breaker_record(h->endpoint, transport_ok, h->req.error[0] ? h->req.error : NULL);
	}
}

/* compare each head read with the local batch chain and record the verdict */
static void
record_heads(List *checks)
{
	ListCell   *lc;

	foreach(lc, checks)
	{
		CsHeadCheck *h = lfirst(lc);
		const char *status = "ok";
		char	   *detail = NULL;
		Oid			types[5] = {INT4OID, TEXTOID, INT8OID, TEXTOID, TEXTOID};
		Datum		args[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
		int			ret;
		bool		isnull;

		if (h->result == CS_HEAD_UNKNOWN)
		{
			status = "unreachable";
			detail = h->detail ? h->detail : pstrdup("the sink could not be asked");
		}
		else if (h->result == CS_HEAD_NONE)
			detail = pstrdup("the sink holds no head for this database yet");
		else
		{
			Oid			ctypes[2] = {INT8OID, TEXTOID};
			Datum		cargs[2];
			Datum		local_hash;
			bool		local_missing;
			int64		local_max;

			cargs[0] = Int64GetDatum(h->batch_id);
			cargs[1] = CStringGetTextDatum(h->batch_hash);
			ret = SPI_execute_with_args("SELECT '0x' || encode(b.batch_hash, 'hex') = $2,"
										"       (SELECT coalesce(max(batch_id), 0) FROM chainstore.batches)"
										"  FROM (SELECT 1) x LEFT JOIN chainstore.batches b ON b.batch_id = $1",
										2, ctypes, cargs, NULL, true, 1);
			if (ret != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "comparing heads failed");
			local_hash = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &local_missing);
			local_max = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			if (local_missing)
			{
				status = "fork";
				detail = psprintf("the sink's newest batch is " INT64_FORMAT " but this database's is " INT64_FORMAT
								  " (restored from an older backup, or failed over to a lagging replica?)",
								  h->batch_id, local_max);
			}
			else if (!DatumGetBool(local_hash))
			{
				status = "fork";
				detail = psprintf("batch " INT64_FORMAT " on the sink (%s) is not this database's batch " INT64_FORMAT,
								  h->batch_id, h->batch_hash, h->batch_id);
			}
			else
				detail = psprintf("the sink's newest batch " INT64_FORMAT " matches the local chain", h->batch_id);
		}

		args[0] = Int32GetDatum(h->sink_id);
		args[1] = CStringGetTextDatum(status);
		if (h->result == CS_HEAD_FOUND)
		{
			args[2] = Int64GetDatum(h->batch_id);
			args[3] = CStringGetTextDatum(h->batch_hash);
		}
		else
			nulls[2] = nulls[3] = 'n';
		args[4] = CStringGetTextDatum(detail);
		ret = SPI_execute_with_args(
									"INSERT INTO chainstore.reconciliation AS r"
									"  (sink_id, checked_at, status, sink_batch_id, sink_batch_hash,"
									"   local_batch_id, local_batch_hash, detail)"
									" SELECT $1, now(), $2, $3, decode(substr($4, 3), 'hex'), l.batch_id, l.batch_hash, $5"
									"   FROM (SELECT 1) x LEFT JOIN LATERAL (SELECT batch_id, batch_hash FROM chainstore.batches"
									"                                  ORDER BY batch_id DESC LIMIT 1) l ON true"
									" ON CONFLICT (sink_id) DO UPDATE SET"
									"   checked_at = EXCLUDED.checked_at,"
									"   status = CASE WHEN EXCLUDED.status = 'unreachable' AND r.status = 'fork'"
									"                 THEN r.status ELSE EXCLUDED.status END,"
									"   sink_batch_id = coalesce(EXCLUDED.sink_batch_id, r.sink_batch_id),"
									"   sink_batch_hash = coalesce(EXCLUDED.sink_batch_hash, r.sink_batch_hash),"
									"   local_batch_id = EXCLUDED.local_batch_id, local_batch_hash = EXCLUDED.local_batch_hash,"
									"   detail = EXCLUDED.detail,"
		/* an acknowledgment holds for the very head that was acknowledged */
									"   acknowledged_at = CASE WHEN EXCLUDED.status = 'fork'"
									"        AND r.acknowledged_batch_id = EXCLUDED.sink_batch_id"
									"        AND r.acknowledged_batch_hash = EXCLUDED.sink_batch_hash THEN r.acknowledged_at"
									"        WHEN EXCLUDED.status = 'unreachable' THEN r.acknowledged_at END,"
									"   acknowledged_by = CASE WHEN EXCLUDED.status = 'fork'"
									"        AND r.acknowledged_batch_id = EXCLUDED.sink_batch_id"
									"        AND r.acknowledged_batch_hash = EXCLUDED.sink_batch_hash THEN r.acknowledged_by"
									"        WHEN EXCLUDED.status = 'unreachable' THEN r.acknowledged_by END"
									" RETURNING status = 'fork' AND acknowledged_at IS NULL",
									5, types, args, nulls, false, 0);
		if (ret != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "recording reconciliation failed");
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			ereport(WARNING,
					(errmsg("chainstore: sink %s holds a different batch chain; nothing more is anchored there",
							h->sink_name),
					 errdetail("%s", detail),
					 errhint("Check chainstore.reconciliation_report, then call chainstore.acknowledge_fork('%s') to anchor this database's chain there anyway.",
							 h->sink_name)));
	}
}

/* after deliveries: heads to publish, one per sink that got a new delivery */
static List *
heads_to_publish(List *work, MemoryContext round_cxt)
{
	List	   *writes = NIL;
	List	   *done_sinks = NIL;
	ListCell   *lc;

	foreach(lc, work)
	{
		CsDelivery *d = lfirst(lc);
		Oid			types[1] = {INT4OID};
		Datum		args[1];
		int			ret;
		const CsSinkOps *ops = sink_ops(d->kind);

		if (d->step != CS_STEP_SUBMIT || d->outcome != CS_OUTCOME_OK ||
			ops == NULL || ops->prepare_head == NULL ||
			list_member_int(done_sinks, d->sink_id))
			continue;
		done_sinks = lappend_int(done_sinks, d->sink_id);
		args[0] = Int32GetDatum(d->sink_id);
		ret = SPI_execute_with_args("SELECT json_build_object('format', 'chainstore-head-v1',"
									"   'batch_id', b.batch_id, 'batch_hash', '0x' || encode(b.batch_hash, 'hex'),"
									"   'attestation', dl.attestation,"
									"   'system_identifier', b.system_identifier::text)::text"
									"  FROM chainstore.deliveries dl JOIN chainstore.batches b USING (batch_id)"
									" WHERE dl.sink_id = $1 AND dl.state IN ('delivered', 'verified')"
									" ORDER BY dl.batch_id DESC LIMIT 1",
									/* not read-only: it must see the deliveries just recorded */
									1, types, args, NULL, false, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
		{
			MemoryContext old = MemoryContextSwitchTo(round_cxt);
			CsHeadCheck *h = palloc0(sizeof(CsHeadCheck));

			h->sink_id = d->sink_id;
			h->sink_name = d->sink_name;
			h->kind = d->kind;
			h->endpoints = d->endpoints;
			h->nendpoints = d->nendpoints;
			h->options = d->options;
			h->path = head_path(d->sink_name);
			h->writing = true;
			h->body = spi_text(SPI_tuptable->vals[0], 1);
			writes = lappend(writes, h);
			MemoryContextSwitchTo(old);
		}
	}
	return writes;
}

/* ms until the next delivery is due (capped by naptime) */
static int64
next_due_ms(void)
{
	bool		isnull;
	/* the same deliveries the claim would take: not those of a blocked sink */
	int			ret = SPI_execute("SELECT extract(epoch FROM min(d.next_attempt_at) - now()) * 1000"
								  "  FROM chainstore.deliveries d JOIN chainstore.sinks s USING (sink_id)"
								  " WHERE s.enabled AND (d.state IN ('pending', 'in_flight', 'delivered')"
								  "       OR (d.state = 'verified' AND d.delayed_verified_at IS NULL))"
								  "   AND NOT EXISTS (SELECT 1 FROM chainstore.reconciliation r"
								  "                    WHERE r.sink_id = d.sink_id AND r.status = 'fork'"
								  "                      AND r.acknowledged_at IS NULL)",
								  true, 1);
	Datum		d;

	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the next due delivery failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return -1;
	return Max(0, (int64) DatumGetFloat8(DirectFunctionCall1(numeric_float8, d)));
}

/* one round; returns how long to sleep */
static long
run_round(void)
{
	static bool warned_missing = false;
	int64		seal_in;
	int64		due_in;
	long		sleep_ms = cs_naptime_ms;
	List	   *work;
	List	   *finished;
	List	   *checks;
	MemoryContext round_cxt = CurrentMemoryContext;

	begin_tx("chainstore: sealing");
	if (!extension_ready())
	{
		if (!warned_missing)
			ereport(LOG,
					(errmsg("chainstore worker: extension chainstore is not installed in database \"%s\"; waiting",
							get_database_name(MyDatabaseId))));
		warned_missing = true;
		commit_tx();
		return cs_naptime_ms;
	}
	warned_missing = false;
	seal_in = seal_due();
	commit_tx();

	begin_tx("chainstore: claiming deliveries");
	checks = load_head_checks(round_cxt);
	work = claim_deliveries(checks, round_cxt);
	commit_tx();

	if (checks != NIL)
	{
		send_heads(checks);
		begin_tx("chainstore: reconciling");
		record_heads(checks);
		commit_tx();
	}

	/* new work goes on the wire beside what is still there from earlier rounds */
	finished = start_deliveries(work);
	if (inflight != NIL)
	{
		pgstat_report_activity(STATE_RUNNING, "chainstore: delivering");
		(void) cs_http_run(finished != NIL ? 0 : Min(cs_naptime_ms, 1000), true);
		ResetLatch(MyLatch);
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	finished = collect_deliveries(finished);

	if (finished != NIL)
	{
		List	   *writes;
		ListCell   *lc;

		begin_tx("chainstore: recording deliveries");
		record_outcomes(finished);
		writes = heads_to_publish(finished, round_cxt);
		commit_tx();
		if (writes != NIL)
			send_heads(writes);
		foreach(lc, finished)
			MemoryContextDelete(((CsDelivery *) lfirst(lc))->cxt);
	}

	run_writebacks();

	begin_tx("chainstore: scheduling");
	due_in = next_due_ms();
	commit_tx();

	if (seal_in >= 0)
		sleep_ms = Min(sleep_ms, (long) seal_in);
	if (due_in >= 0)
		sleep_ms = Min(sleep_ms, (long) due_in);
	/* requests on the wire, or a full round of work: go again at once */
	if (inflight != NIL || list_length(work) >= cs_concurrency)
		sleep_ms = 0;
	return Max(sleep_ms, 0);
}

static void
release_slot(int code, Datum arg)
{
	if (cs_shared != NULL && my_slot >= 0)
	{
		LWLockAcquire(cs_shared->lock, LW_EXCLUSIVE);
		cs_shared->workers[my_slot].latch = NULL;
		cs_shared->workers[my_slot].pid = 0;
		LWLockRelease(cs_shared->lock);
	}
}

void
chainstore_worker_main(Datum main_arg)
{
	MemoryContext round_cxt;
	char		dbname[BGW_EXTRALEN];

	my_slot = DatumGetInt32(main_arg);
	strlcpy(dbname, MyBgworkerEntry->bgw_extra, sizeof(dbname));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pgstat_report_appname("chainstore worker");

	if (cs_shared != NULL && my_slot >= 0 && my_slot < CS_MAX_DATABASES)
	{
		LWLockAcquire(cs_shared->lock, LW_EXCLUSIVE);
		cs_shared->workers[my_slot].dboid = MyDatabaseId;
		cs_shared->workers[my_slot].pid = MyProcPid;
		cs_shared->workers[my_slot].latch = &MyProc->procLatch;
		LWLockRelease(cs_shared->lock);
		before_shmem_exit(release_slot, (Datum) 0);
	}

	/*
	 * Manifests and payloads are megabytes each.  glibc raises its mmap
	 * threshold after such chunks are freed and then serves them from the
	 * heap, which it rarely gives back: pin the threshold so that large
	 * chunks are always mapped and returned, and RSS stays flat.
	 */
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
#endif

	cs_http_global_init();
	round_cxt = AllocSetContextCreate(TopMemoryContext, "chainstore worker round",
									  ALLOCSET_DEFAULT_SIZES);
	ereport(LOG, (errmsg("chainstore worker started for database \"%s\"", dbname)));

	for (;;)
	{
		long		sleep_ms;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		old = MemoryContextSwitchTo(round_cxt);
		sleep_ms = run_round();
		MemoryContextSwitchTo(old);
		MemoryContextReset(round_cxt);

		if (sleep_ms > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
