/*
 * http.h
 *		Concurrent HTTP requests for the worker (libcurl multi interface).
 */
#ifndef CHAINSTORE_HTTP_H
#define CHAINSTORE_HTTP_H

#include "postgres.h"

typedef struct CsHttpRequest
{
	/* what to send */
	char	   *url;
	const char *body;			/* POST body, or NULL */
	size_t		body_len;
	const char *upload_name;	/* if set: body is sent as multipart file "file" */
	const char *content_type;	/* for a plain body */
	const char *auth_header;	/* e.g. "Authorization: Bearer ..."; never logged */
	size_t		max_response;	/* bytes; larger answers fail */

	/* what came back */
	bool		done;
	long		status;			/* HTTP status, 0 on transport failure */
	char	   *response;		/* palloc'd, NUL-terminated */
	size_t		response_len;
	int			retry_after_s;	/* from Retry-After, -1 if absent */
	double		elapsed_ms;
	char		error[256];		/* transport error, empty if none */
	bool		timed_out;

	/* caller's bookkeeping */
	void	   *owner;
	int			endpoint_index;
} CsHttpRequest;

/*
 * Run all requests at once; returns when every one has finished or failed.
 * Checks for interrupts between short waits, so SIGTERM is prompt.
 */
extern void cs_http_perform(CsHttpRequest **reqs, int n, long connect_timeout_ms,
							long timeout_ms);

extern void cs_http_global_init(void);

#endif
