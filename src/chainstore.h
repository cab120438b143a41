/*
 * chainstore.h
 *		Module-wide settings and shared state.
 */
#ifndef CHAINSTORE_H
#define CHAINSTORE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

/* settings (src/chainstore.c) */
extern int	cs_progress_rows;
extern char *cs_databases;
extern int	cs_naptime_ms;
extern int	cs_batch_size;
extern int	cs_max_batch_delay_ms;
extern int	cs_concurrency;
extern int	cs_connect_timeout_ms;
extern int	cs_request_timeout_ms;
extern int	cs_max_attempts;
extern int	cs_retry_base_storage_ms;
extern int	cs_retry_base_chain_ms;
extern int	cs_retry_max_delay_ms;
extern int	cs_verify_delay_s;
extern int	cs_breaker_window_s;
extern int	cs_breaker_min_requests;
extern double cs_breaker_failure_ratio;
extern int	cs_breaker_open_s;
extern int	cs_breaker_close_successes;
extern int	cs_max_endpoints;
extern char *cs_secrets_dir;
extern int	cs_reconcile_interval_s;

#define CS_MAX_DATABASES 16
#define CS_ENDPOINT_LEN 256
#define CS_ERROR_LEN 256
#define CS_BREAKER_BUCKETS 6	/* window split into 6 buckets */

typedef enum CsCircuitState
{
	CS_CIRCUIT_CLOSED,
	CS_CIRCUIT_OPEN,
	CS_CIRCUIT_HALF_OPEN
} CsCircuitState;

typedef enum CsCircuitMode
{
	CS_MODE_AUTO,
	CS_MODE_FORCE_OPEN,
	CS_MODE_FORCE_CLOSED
} CsCircuitMode;

typedef struct CsBreaker
{
	bool		used;
	char		endpoint[CS_ENDPOINT_LEN];
	CsCircuitState state;
	CsCircuitMode mode;
	TimestampTz opened_at;
	bool		probe_in_flight;
	int			consecutive_ok;
	int64		bucket_start[CS_BREAKER_BUCKETS];	/* seconds, per bucket */
	int			bucket_ok[CS_BREAKER_BUCKETS];
	int			bucket_fail[CS_BREAKER_BUCKETS];
	TimestampTz last_success;
	TimestampTz last_failure;
	char		last_error[CS_ERROR_LEN];
} CsBreaker;

typedef struct CsWorkerSlot
{
	Oid			dboid;
	pid_t		pid;
	Latch	   *latch;
} CsWorkerSlot;

typedef struct CsShared
{
	LWLock	   *lock;
	CsWorkerSlot workers[CS_MAX_DATABASES];
	int			nbreakers;
	CsBreaker	breakers[FLEXIBLE_ARRAY_MEMBER];
} CsShared;

/* NULL unless chainstore is in shared_preload_libraries */
extern CsShared *cs_shared;

/* the capture trigger wrote a version: wake the worker when this transaction commits */
extern void cs_note_capture(void);

/* wake the worker serving this database, if any */
extern void cs_wake_worker(Oid dboid);

#endif
