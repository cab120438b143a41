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
		if (req->content_type)
		{
			char		ct[128];

			snprintf(ct, sizeof(ct), "Content-Type: %s", req->content_type);
			t->headers = curl_slist_append(t->headers, ct);
		}
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
		req->timed_out = (code == CURLE_OPERATION_TIMEDOUT);
		/* a cut or oversized body is no answer at all */
		req->status = 0;
	}
	req->response = palloc(t->len + 1);
	if (t->len > 0)
		memcpy(req->response, t->buf, t->len);
	req->response[t->len] = '\0';
	req->response_len = t->len;
}

static void
release_transfers(CURLM *multi, Transfer *ts, int n)
{
	for (int i = 0; i < n; i++)
	{
		if (ts[i].easy)
		{
			if (multi)
				curl_multi_remove_handle(multi, ts[i].easy);
			curl_easy_cleanup(ts[i].easy);
		}
		if (ts[i].mime)
			curl_mime_free(ts[i].mime);
		if (ts[i].headers)
			curl_slist_free_all(ts[i].headers);
		free(ts[i].buf);
		ts[i].easy = NULL;
		ts[i].mime = NULL;
		ts[i].headers = NULL;
		ts[i].buf = NULL;
	}
	if (multi)
		curl_multi_cleanup(multi);
}

void
cs_http_perform(CsHttpRequest **reqs, int n, long connect_timeout_ms, long timeout_ms)
{
	CURLM	   *multi;
	Transfer   *ts;
	int			running = 0;

	if (n == 0)
		return;
	cs_http_global_init();
	ts = palloc0(sizeof(Transfer) * n);
	multi = curl_multi_init();
	if (multi == NULL)
		elog(ERROR, "curl_multi_init failed");

	PG_TRY();
	{
		for (int i = 0; i < n; i++)
		{
			ts[i].req = reqs[i];
			reqs[i]->done = false;
			reqs[i]->status = 0;
			reqs[i]->error[0] = '\0';
			reqs[i]->retry_after_s = -1;
			reqs[i]->timed_out = false;
			if (reqs[i]->max_response == 0)
				reqs[i]->max_response = 64 * 1024 * 1024;
			setup_transfer(&ts[i], connect_timeout_ms, timeout_ms);
			INSTR_TIME_SET_CURRENT(ts[i].start);
			curl_multi_add_handle(multi, ts[i].easy);
		}

		do
		{
			CURLMcode	mc = curl_multi_perform(multi, &running);
			CURLMsg    *msg;
			int			left;

			if (mc != CURLM_OK)
				elog(ERROR, "curl_multi_perform failed: %s", curl_multi_strerror(mc));
			while ((msg = curl_multi_info_read(multi, &left)) != NULL)
			{
				if (msg->msg == CURLMSG_DONE)
				{
					Transfer   *t;

					curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
					finish_transfer(t, msg->data.result);
				}
			}
			if (running > 0)
			{
				int			numfds;

				mc = curl_multi_poll(multi, NULL, 0, 100, &numfds);
				if (mc != CURLM_OK)
					elog(ERROR, "curl_multi_poll failed: %s", curl_multi_strerror(mc));
			}
			CHECK_FOR_INTERRUPTS();
		} while (running > 0);
	}
	PG_FINALLY();
	{
		release_transfers(multi, ts, n);
	}
	PG_END_TRY();

	/* anything libcurl never reported as done (should not happen) */
	for (int i = 0; i < n; i++)
		if (!reqs[i]->done)
		{
			reqs[i]->done = true;
			snprintf(reqs[i]->error, sizeof(reqs[i]->error), "transfer did not complete");
			reqs[i]->response = pstrdup("");
		}
}
