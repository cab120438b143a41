/*
 * breaker.c
 *		Circuit breakers per sink endpoint, kept in shared memory so that
 *		chainstore.sink_health can show them and chainstore.circuit() can
 *		override them.
 *
 * CLOSED: requests flow; outcomes are counted in a sliding window of
 * CS_BREAKER_BUCKETS buckets over chainstore.breaker_window.  When at least
 * chainstore.breaker_min_requests fell in the window and the failure ratio
 * reaches chainstore.breaker_failure_ratio, the circuit OPENs: no requests
 * for chainstore.breaker_open_time, after which it is HALF_OPEN and lets
 * one probe through at a time.  chainstore.breaker_close_successes probes in
 * a row close it; a failed probe opens it again.  Breaker state is soft: it
 * is lost on restart, which only costs a few failed requests.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "breaker.h"

static void
require_shared(void)
{
	if (cs_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("chainstore must be loaded via shared_preload_libraries")));
}

/* find the slot of an endpoint, creating it if asked; caller holds the lock exclusively to create */
static CsBreaker *
find_slot(const char *endpoint, bool create)
{
	CsBreaker  *free_slot = NULL;

	for (int i = 0; i < cs_shared->nbreakers; i++)
	{
		CsBreaker  *b = &cs_shared->breakers[i];

		if (b->used && strncmp(b->endpoint, endpoint, CS_ENDPOINT_LEN) == 0)
			return b;
		if (!b->used && free_slot == NULL)
			free_slot = b;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(CsBreaker));
	free_slot->used = true;
	strlcpy(free_slot->endpoint, endpoint, CS_ENDPOINT_LEN);
	free_slot->state = CS_CIRCUIT_CLOSED;
	free_slot->mode = CS_MODE_AUTO;
	return free_slot;
}

static int64
bucket_width(void)
{
	return Max(1, cs_breaker_window_s / CS_BREAKER_BUCKETS);
}

/* requests and failures within the window ending now */
static void
window_counts(CsBreaker *b, int64 now_s, int *requests, int *failures)
{
	*requests = 0;
	*failures = 0;
	for (int i = 0; i < CS_BREAKER_BUCKETS; i++)
		if (b->bucket_start[i] > now_s - cs_breaker_window_s)
		{
			*requests += b->bucket_ok[i] + b->bucket_fail[i];
			*failures += b->bucket_fail[i];
		}
}

static void
open_circuit(CsBreaker *b, TimestampTz now)
{
	b->state = CS_CIRCUIT_OPEN;
	b->opened_at = now;
	b->probe_in_flight = false;
	b->consecutive_ok = 0;
}

bool
cs_breaker_allow(const char *endpoint)
{
	CsBreaker  *b;
	bool		allow = true;
	TimestampTz now = GetCurrentTimestamp();

	if (cs_shared == NULL)
		return true;
	LWLockAcquire(cs_shared->lock, LW_EXCLUSIVE);
	b = find_slot(endpoint, true);
	if (b == NULL)
		allow = true;			/* more endpoints than slots: no breaker */
	else if (b->mode == CS_MODE_FORCE_OPEN)
		allow = false;
	else if (b->mode == CS_MODE_FORCE_CLOSED)
		allow = true;
	else if (b->state == CS_CIRCUIT_OPEN)
	{
		if (TimestampDifferenceExceeds(b->opened_at, now, cs_breaker_open_s * 1000))
		{
			b->state = CS_CIRCUIT_HALF_OPEN;
			b->probe_in_flight = true;
			allow = true;
		}
		else
			allow = false;
	}
	else if (b->state == CS_CIRCUIT_HALF_OPEN)
	{
		allow = !b->probe_in_flight;
		if (allow)
			b->probe_in_flight = true;
	}
	LWLockRelease(cs_shared->lock);
	return allow;
}

void
cs_breaker_record(const char *endpoint, bool ok, const char *error)
{
	CsBreaker  *b;
	TimestampTz now = GetCurrentTimestamp();
	int64		now_s = (int64) (now / USECS_PER_SEC);
	int64		start = now_s - now_s % bucket_width();
	int			slot = (int) ((start / bucket_width()) % CS_BREAKER_BUCKETS);

	if (cs_shared == NULL)
		return;
	LWLockAcquire(cs_shared->lock, LW_EXCLUSIVE);
	b = find_slot(endpoint, true);
	if (b != NULL)
	{
		if (b->bucket_start[slot] != start)
		{
			b->bucket_start[slot] = start;
			b->bucket_ok[slot] = 0;
			b->bucket_fail[slot] = 0;
		}
		if (ok)
		{
			b->bucket_ok[slot]++;
			b->last_success = now;
		}
		else
		{
			b->bucket_fail[slot]++;
			b->last_failure = now;
			strlcpy(b->last_error, error ? error : "", CS_ERROR_LEN);
		}

		if (b->state == CS_CIRCUIT_HALF_OPEN)
		{
			b->probe_in_flight = false;
			if (!ok)
				open_circuit(b, now);
			else if (++b->consecutive_ok >= cs_breaker_close_successes)
			{
				b->state = CS_CIRCUIT_CLOSED;
				b->consecutive_ok = 0;
				/* start the window afresh so old failures do not reopen it */
				memset(b->bucket_start, 0, sizeof(b->bucket_start));
			}
		}
		else if (b->state == CS_CIRCUIT_CLOSED && !ok)
		{
			int			requests,
						failures;

			window_counts(b, now_s, &requests, &failures);
			if (requests >= cs_breaker_min_requests &&
				(double) failures / requests >= cs_breaker_failure_ratio)
				open_circuit(b, now);
		}
	}
	LWLockRelease(cs_shared->lock);
}

void
cs_breaker_release(const char *endpoint)
{
	CsBreaker  *b;

	if (cs_shared == NULL)
		return;
	LWLockAcquire(cs_shared->lock, LW_EXCLUSIVE);
	b = find_slot(endpoint, false);
	if (b != NULL && b->state == CS_CIRCUIT_HALF_OPEN)
		b->probe_in_flight = false;
	LWLockRelease(cs_shared->lock);
}

/* chainstore.circuit(endpoint, 'open' | 'closed' | 'auto') */
PG_FUNCTION_INFO_V1(chainstore_circuit);
Datum
chainstore_circuit(PG_FUNCTION_ARGS)
{
	char	   *endpoint = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *mode = text_to_cstring(PG_GETARG_TEXT_PP(1));
	CsCircuitMode m;
	CsBreaker  *b;

	require_shared();
	if (strcmp(mode, "open") == 0)
		m = CS_MODE_FORCE_OPEN;
	else if (strcmp(mode, "closed") == 0)
		m = CS_MODE_FORCE_CLOSED;
	else if (strcmp(mode, "auto") == 0)
		m = CS_MODE_AUTO;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("circuit mode must be 'open', 'closed' or 'auto', not \"%s\"", mode)));
	if (strlen(endpoint) >= CS_ENDPOINT_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("endpoint is longer than %d bytes", CS_ENDPOINT_LEN - 1)));

	LWLockAcquire(cs_shared->lock, LW_EXCLUSIVE);
	b = find_slot(endpoint, true);
	if (b == NULL)
	{
		LWLockRelease(cs_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("no free circuit breaker slot"),
				 errhint("Raise chainstore.max_endpoints.")));
	}
	b->mode = m;
	if (m == CS_MODE_AUTO)
	{
		b->state = CS_CIRCUIT_CLOSED;
		b->probe_in_flight = false;
		b->consecutive_ok = 0;
		memset(b->bucket_start, 0, sizeof(b->bucket_start));
	}
	LWLockRelease(cs_shared->lock);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(chainstore_circuit_states);
Datum
chainstore_circuit_states(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		now_s = (int64) (GetCurrentTimestamp() / USECS_PER_SEC);
	static const char *const states[] = {"closed", "open", "half-open"};
	static const char *const modes[] = {"auto", "open", "closed"};

	InitMaterializedSRF(fcinfo, 0);
	if (cs_shared == NULL)
		return (Datum) 0;

	LWLockAcquire(cs_shared->lock, LW_SHARED);
	for (int i = 0; i < cs_shared->nbreakers; i++)
	{
		CsBreaker  *b = &cs_shared->breakers[i];
		Datum		values[9];
		bool		nulls[9] = {false};
		int			requests,
					failures;

		if (!b->used)
			continue;
		window_counts(b, now_s, &requests, &failures);
		values[0] = CStringGetTextDatum(b->endpoint);
		values[1] = CStringGetTextDatum(b->mode == CS_MODE_FORCE_OPEN ? "open" :
										b->mode == CS_MODE_FORCE_CLOSED ? "closed" :
										states[b->state]);
		values[2] = CStringGetTextDatum(modes[b->mode]);
		values[3] = Int32GetDatum(requests);
		values[4] = Int32GetDatum(failures);
		values[5] = TimestampTzGetDatum(b->opened_at);
		nulls[5] = (b->opened_at == 0);
		values[6] = TimestampTzGetDatum(b->last_success);
		nulls[6] = (b->last_success == 0);
		values[7] = TimestampTzGetDatum(b->last_failure);
		nulls[7] = (b->last_failure == 0);
		values[8] = CStringGetTextDatum(b->last_error);
		nulls[8] = (b->last_error[0] == '\0');
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(cs_shared->lock);
	return (Datum) 0;
}
