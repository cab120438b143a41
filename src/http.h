/*
 * http.h
 *		Concurrent HTTP requests for the worker (libcurl multi interface).
 */
#ifndef CHAINSTORE_HTTP_H
#define CHAINSTORE_HTTP_H

#include "postgres.h"

#include "datatype/timestamp.h"

typedef struct CsHttpRequest
{
	/* what to send */
	char	   *url;
	const char *body;			/* POST body, or NULL */
	size_t		body_len;
	const char *upload_name;	/* if set: body is sent as multipart file "file" */
	const char *auth_header;	/* e.g. "Authorization: Bearer ..."; never logged */
	size_t		max_response;	/* bytes; larger answers fail */

	/* what came back */
	bool		done;
	long		status;			/* HTTP status, 0 on transport failure */
	char	   *response;		/* palloc'd, NUL-terminated */
	size_t		response_len;
	int			retry_after_s;	/* from Retry-After, -1 if absent */
	double		elapsed_ms;
	TimestampTz started_at;		/* when the transfer was set up */
	char		error[256];		/* transport error, empty if none */

	/* the response is allocated here (set by cs_http_submit) */
	MemoryContext cxt;
} CsHttpRequest;

/*
 * A persistent engine: transfers submitted in one round of the worker may
 * finish in a later one, so a slow endpoint never holds up the others.
 * The request (and what it points to) must stay valid until req->done.
 */
extern void cs_http_submit(CsHttpRequest *req, long connect_timeout_ms, long timeout_ms);

/*
 * Drive transfers for at most wait_ms; returns early once at least one has
 * completed, or when the process latch is set (new work).  Returns the
 * number still in flight.  Checks for interrupts every 100 ms.
 */
extern int	cs_http_run(long wait_ms, bool wake_on_latch);

/* Run these requests to completion (used for small side requests). */
extern void cs_http_perform(CsHttpRequest **reqs, int n, long connect_timeout_ms,
							long timeout_ms);

extern void cs_http_global_init(void);

#endif
