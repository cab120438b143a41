/*
 * http.c
 *		Concurrent HTTP requests for the worker, on libcurl's multi interface.
 *
 * The worker never waits on the network inside a transaction: it builds
 * requests, calls cs_http_perform() with no transaction open, and records
 * the outcomes afterwards.  Transfers run concurrently in this one process;
 * waits are sliced into 100 ms so that interrupts (SIGTERM, postmaster
 * death) are served promptly.  Response bodies are collected with malloc
 * inside libcurl's callbacks (palloc could longjmp through libcurl) and
 * copied into palloc'd memory at the end.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "portability/instr_time.h"

#include "http.h"

typedef struct Transfer
{
	CsHttpRequest *req;
	CURL	   *easy;
	curl_mime  *mime;
	struct curl_slist *headers;
	char	   *buf;
	size_t		len;
	size_t		cap;
	bool		too_large;
	instr_time	start;
} Transfer;

/* the engine: one multi handle for the life of the process */
static CURLM *multi = NULL;
static int	in_flight = 0;
void
cs_http_global_init(void)
{
	static bool done = false;

	if (!done)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			elog(ERROR, "libcurl initialisation failed");
		done = true;
	}
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = arg;
	size_t		n = size * nmemb;

	if (t->len + n > t->req->max_response)
	{
		t->too_large = true;
		return 0;				/* aborts the transfer */
	}
	if (t->len + n + 1 > t->cap)
	{
		size_t		cap = Max(t->cap * 2, t->len + n + 1);
		char	   *nb = realloc(t->buf, Max(cap, 4096));

		if (nb == NULL)
			return 0;
		t->buf = nb;
		t->cap = Max(cap, 4096);
	}
	memcpy(t->buf + t->len, data, n);
	t->len += n;
	return n;
}

static size_t
header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = arg;
	size_t		n = size * nmemb;

	if (n > 12 && pg_strncasecmp(data, "Retry-After:", 12) == 0)
	{
		char		tmp[32];
		size_t		k = Min(n - 12, sizeof(tmp) - 1);
		long		v;
		char	   *end;

		memcpy(tmp, data + 12, k);
		tmp[k] = '\0';
		v = strtol(tmp, &end, 10);
		/* only the delta-seconds form; an HTTP date counts as absent */
		if (end != tmp && v >= 0 && v < 86400)
			t->req->retry_after_s = (int) v;
	}
	return n;
}

static void
setup_transfer(Transfer *t, long connect_timeout_ms, long timeout_ms)
{
	CsHttpRequest *req = t->req;
	CURL	   *easy = curl_easy_init();

	if (easy == NULL)
		elog(ERROR, "curl_easy_init failed");
	t->easy = easy;
	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "chainstore/0.1");

	t->headers = curl_slist_append(NULL, "Expect:");
	if (req->auth_header)
		t->headers = curl_slist_append(t->headers, req->auth_header);

	if (req->upload_name)
	{
		curl_mimepart *part;

		t->mime = curl_mime_init(easy);
		part = curl_mime_addpart(t->mime);
		curl_mime_name(part, "file");
		curl_mime_filename(part, req->upload_name);
		curl_mime_type(part, "application/octet-stream");
		curl_mime_data(part, req->body ? req->body : "", req->body_len);
		curl_easy_setopt(easy, CURLOPT_MIMEPOST, t->mime);
	}
	else
	{
		/* Kubo's RPC wants POST even without a body */
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (req->body ? req->body_len : 0));
	}
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
}

static void
finish_transfer(Transfer *t, CURLcode code)
{
	CsHttpRequest *req = t->req;
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, t->start);
	req->elapsed_ms = INSTR_TIME_GET_MILLISEC(now);
	req->done = true;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &req->status);
	if (code != CURLE_OK)
	{
		if (t->too_large)
			snprintf(req->error, sizeof(req->error), "response larger than %zu bytes", req->max_response);
		else
			snprintf(req->error, sizeof(req->error), "%s", curl_easy_strerror(code));
		/* a cut or oversized body is no answer at all */
		req->status = 0;
	}
	req->response = MemoryContextAlloc(req->cxt, t->len + 1);
	if (t->len > 0)
		memcpy(req->response, t->buf, t->len);
	req->response[t->len] = '\0';
	req->response_len = t->len;
}

static void
release_transfer(Transfer *t)
{
	if (t->easy)
	{
		curl_multi_remove_handle(multi, t->easy);
		curl_easy_cleanup(t->easy);
	}
	if (t->mime)
		curl_mime_free(t->mime);
	if (t->headers)
		curl_slist_free_all(t->headers);
	free(t->buf);
	free(t);
}

void
cs_http_submit(CsHttpRequest *req, long connect_timeout_ms, long timeout_ms)
{
	Transfer   *t;

	cs_http_global_init();
	if (multi == NULL && (multi = curl_multi_init()) == NULL)
		elog(ERROR, "curl_multi_init failed");
	t = calloc(1, sizeof(Transfer));
	if (t == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	t->req = req;
	req->done = false;
	req->status = 0;
	req->error[0] = '\0';
	req->retry_after_s = -1;
	req->response = NULL;
	req->response_len = 0;
	if (req->cxt == NULL)
		req->cxt = CurrentMemoryContext;
	if (req->max_response == 0)
		req->max_response = 64 * 1024 * 1024;
	setup_transfer(t, connect_timeout_ms, timeout_ms);
	INSTR_TIME_SET_CURRENT(t->start);
	req->started_at = GetCurrentTimestamp();
	if (curl_multi_add_handle(multi, t->easy) != CURLM_OK)
	{
		release_transfer(t);
		elog(ERROR, "curl_multi_add_handle failed");
	}
	in_flight++;
}

int
cs_http_run(long wait_ms, bool wake_on_latch)
{
	instr_time	start;
	int			completed = 0;

	if (multi == NULL || in_flight == 0)
		return 0;
	INSTR_TIME_SET_CURRENT(start);
	for (;;)
	{
		int			running;
		CURLMsg    *msg;
		int			left;
		CURLMcode	mc = curl_multi_perform(multi, &running);
		instr_time	now;

		if (mc != CURLM_OK)
			elog(ERROR, "curl_multi_perform failed: %s", curl_multi_strerror(mc));
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			if (msg->msg == CURLMSG_DONE)
			{
				Transfer   *t;

				curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
				finish_transfer(t, msg->data.result);
				release_transfer(t);
				in_flight--;
				completed++;
			}
		}
		CHECK_FOR_INTERRUPTS();
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		if (in_flight == 0 || completed > 0 || (wake_on_latch && MyLatch->is_set) ||
			INSTR_TIME_GET_MILLISEC(now) >= wait_ms)
			break;
		mc = curl_multi_poll(multi, NULL, 0, (int) Min(100, Max(1, wait_ms)), NULL);
		if (mc != CURLM_OK)
			elog(ERROR, "curl_multi_poll failed: %s", curl_multi_strerror(mc));
	}
	return in_flight;
}

void
cs_http_perform(CsHttpRequest **reqs, int n, long connect_timeout_ms, long timeout_ms)
{
	bool		all_done;

	for (int i = 0; i < n; i++)
		cs_http_submit(reqs[i], connect_timeout_ms, timeout_ms);
	do
	{
		(void) cs_http_run(100, false);
		all_done = true;
		for (int i = 0; i < n; i++)
			all_done = all_done && reqs[i]->done;
	} while (!all_done);
}
