/*
 * sink_ipfs.c
 *		The IPFS sink: a batch's manifest (docs/manifest.md) is added
 *		through the Kubo RPC API (/api/v0/add, CIDv1, pinned) and verified by
 *		reading it back (/api/v0/cat).
 *
 * chainstore computes the CID itself (cid.c) before sending and refuses a
 * node that answers with a different one.  Adding the same bytes again
 * gives the same CID, so re-delivery after a crash is idempotent.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "chainstore.h"
#include "cid.h"
#include "jsonutil.h"
#include "sink.h"

static void
ipfs_build_payload(CsDelivery *d)
{
	Oid			types[2] = {INT8OID, BOOLOID};
	Datum		args[2];
	int			ret;
	bool		isnull;
	text	   *manifest;

	/* SPI leaves us in its own context, which dies at SPI_finish */
	MemoryContext cxt = CurrentMemoryContext;

	args[0] = Int64GetDatum(d->batch_id);
	args[1] = BoolGetDatum(cs_option_bool(d->options, "include_record_hash", false));
	ret = SPI_execute_with_args("SELECT chainstore.batch_manifest($1, $2)::text",
								2, types, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "building the manifest of batch " INT64_FORMAT " failed", d->batch_id);
	manifest = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		elog(ERROR, "batch " INT64_FORMAT " has no manifest", d->batch_id);
	MemoryContextSwitchTo(cxt);
	d->payload_len = VARSIZE_ANY_EXHDR(manifest);
	d->payload = palloc(d->payload_len + 1);
	memcpy(d->payload, VARDATA_ANY(manifest), d->payload_len);
	d->payload[d->payload_len] = '\0';
	d->payload_id = cs_ipfs_cid_v1((const uint8_t *) d->payload, d->payload_len);
}

static void
ipfs_prepare(CsDelivery *d)
{
	StringInfoData url;

	initStringInfo(&url);
	memset(&d->req, 0, sizeof(d->req));
	if (d->step == CS_STEP_SUBMIT)
	{
		appendStringInfo(&url, "%s/api/v0/add?cid-version=1&pin=true", d->endpoint);
		d->req.body = d->payload;
		d->req.body_len = d->payload_len;
		d->req.upload_name = "manifest.json";
		d->req.max_response = 64 * 1024;
	}
	else
	{
		/* the node must not wait forever for content it does not have */
		appendStringInfo(&url, "%s/api/v0/cat?arg=%s&timeout=%ds", d->endpoint, d->payload_id,
						 Max(1, cs_request_timeout_ms / 2000));
		d->req.max_response = d->payload_len + 1;
	}
	d->req.url = url.data;

	/* an Authorization header from a secret file, e.g. "Bearer …" or "Basic …" */
	{
		char	   *secret_name = cs_option_text(d->options, "auth_secret", NULL);

		if (secret_name != NULL)
		{
			char	   *why;
			char	   *secret = cs_read_secret(secret_name, &why);

			if (secret == NULL)
			{
				d->outcome = CS_OUTCOME_PERMANENT;
				d->detail = why;
				return;
			}
			d->req.auth_header = psprintf("Authorization: %s", secret);
		}
	}
}

static void
ipfs_interpret(CsDelivery *d)
{
	cs_classify_http(d);
	if (d->outcome != CS_OUTCOME_OK)
		return;

	if (d->step == CS_STEP_SUBMIT)
	{
		bool		valid_json;
		char	   *cid = cs_json_string(d->req.response, d->req.response_len, "Hash", &valid_json);

		if (cid == NULL)
		{
			d->outcome = CS_OUTCOME_PERMANENT;
			d->endpoint_failed = true;
			d->detail = psprintf("IPFS node answered without a CID: %s",
								 valid_json ? "no \"Hash\" field" : "not a JSON object");
		}
		else if (strcmp(cid, d->payload_id) != 0)
		{
			d->outcome = CS_OUTCOME_PERMANENT;
			d->endpoint_failed = true;
			d->detail = psprintf("IPFS node answered CID %.100s, chainstore computed %s", cid, d->payload_id);
		}
		else
		{
			StringInfoData att;

			initStringInfo(&att);
			appendStringInfoString(&att, "{\"ipfs_cid\": ");
			escape_json(&att, d->payload_id);
			appendStringInfoString(&att, "}");
			d->new_attestation = att.data;
		}
	}
	else
	{
		char	   *cid = cs_ipfs_cid_v1((const uint8_t *) d->req.response, d->req.response_len);

		if (strcmp(cid, d->payload_id) != 0)
		{
			d->outcome = CS_OUTCOME_MISMATCH;
			d->detail = psprintf("content read back from %s hashes to %s, not %s",
								 d->endpoint, cid, d->payload_id);
		}
		else if (d->req.response_len != d->payload_len ||
				 memcmp(d->req.response, d->payload, d->payload_len) != 0)
		{
			d->outcome = CS_OUTCOME_MISMATCH;
			d->detail = psprintf("content read back from %s differs from the stored manifest", d->endpoint);
		}
		else
			d->detail = psprintf("%zu bytes read back from %s hash to %s and equal the manifest",
								 d->payload_len, d->endpoint, d->payload_id);
	}
}

/* percent-encode a path for a query string */
static void
append_escaped(StringInfo buf, const char *s)
{
	static const char hexd[] = "0123456789ABCDEF";

	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == '/')
			appendStringInfoChar(buf, c);
		else
			appendStringInfo(buf, "%%%c%c", hexd[c >> 4], hexd[c & 15]);
	}
}

/* the head is a small JSON file in the node's MFS */
static void
ipfs_prepare_head(CsHeadCheck *h)
{
	StringInfoData url;

	initStringInfo(&url);
	memset(&h->req, 0, sizeof(h->req));
	if (h->writing)
	{
		appendStringInfo(&url, "%s/api/v0/files/write?create=true&parents=true&truncate=true&arg=",
						 h->endpoint);
		append_escaped(&url, h->path);
		h->req.body = h->body;
		h->req.body_len = strlen(h->body);
		h->req.upload_name = "head.json";
	}
	else
	{
		appendStringInfo(&url, "%s/api/v0/files/read?arg=", h->endpoint);
		append_escaped(&url, h->path);
	}
	h->req.max_response = 64 * 1024;
	h->req.url = url.data;
}

static void
ipfs_interpret_head(CsHeadCheck *h)
{
	long long	batch_id;
	char	   *hash;

	h->result = CS_HEAD_UNKNOWN;
	if (h->req.status == 500 && strstr(h->req.response, "does not exist") != NULL)
	{
		h->result = CS_HEAD_NONE;
		return;
	}
	if (h->req.status != 200)
	{
		h->detail = psprintf("reading the head failed: %s",
							 h->req.error[0] ? h->req.error : psprintf("HTTP %ld", h->req.status));
		return;
	}
	hash = cs_json_string(h->req.response, h->req.response_len, "batch_hash", NULL);
	if (!cs_json_int64(h->req.response, h->req.response_len, "batch_id", &batch_id) || hash == NULL)
	{
		h->detail = pstrdup("the head on the sink is not a chainstore head");
		return;
	}
	h->result = CS_HEAD_FOUND;
	h->batch_id = (int64) batch_id;
	h->batch_hash = hash;
}

const CsSinkOps cs_ipfs_sink = {
	.kind = "ipfs",
	.chain = false,
	.build_payload = ipfs_build_payload,
	.prepare = ipfs_prepare,
	.interpret = ipfs_interpret,
	.prepare_head = ipfs_prepare_head,
	.interpret_head = ipfs_interpret_head,
};
