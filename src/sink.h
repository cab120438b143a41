/*
 * sink.h
 *		The interface every sink kind implements.
 *
 * A delivery (one batch to one sink) moves through steps: submit, then
 * verify (immediate), then verify_delayed.  For each step the worker asks
 * the sink kind to prepare an HTTP request against one endpoint and, once
 * it has run, to interpret the answer.  The payload is built (and stored)
 * before the first submit, so a crash at any point re-sends the same bytes.
 */
#ifndef CHAINSTORE_SINK_H
#define CHAINSTORE_SINK_H

#include "postgres.h"

#include "http.h"

typedef enum CsStep
{
	CS_STEP_SUBMIT,
	CS_STEP_VERIFY,
	CS_STEP_VERIFY_DELAYED
} CsStep;

typedef enum CsOutcome
{
	CS_OUTCOME_NONE,			/* not tried this round (no endpoint available) */
	CS_OUTCOME_OK,
	CS_OUTCOME_TRANSIENT,		/* retry later, maybe elsewhere */
	CS_OUTCOME_PERMANENT,		/* dead letter */
	CS_OUTCOME_MISMATCH			/* verification found different content */
} CsOutcome;

typedef struct CsDelivery
{
	MemoryContext cxt;			/* everything of this delivery; may outlive a round */
	int64		batch_id;
	int32		sink_id;
	char	   *sink_name;
	char	   *kind;
	char	  **endpoints;
	int			nendpoints;
	char	   *options;		/* JSON object text */
	CsStep		step;
	int			attempts;		/* including this one */
	char	   *payload;
	size_t		payload_len;
	char	   *payload_id;
	char	   *attestation;	/* JSON text, once delivered */

	/* this round */
	const char *endpoint;		/* chosen endpoint, NULL if none was available */
	CsHttpRequest req;
	CsOutcome	outcome;
	bool		endpoint_failed;	/* counts against the endpoint's breaker */
	char	   *new_attestation;	/* JSON text on a successful submit */
	char	   *detail;			/* error or verification detail */
} CsDelivery;

/*
 * Reconciliation: each sink keeps a "head" naming the newest batch this
 * database anchored there, so that a database restored from an older backup
 * can notice that the sink holds batches it no longer has.
 */
typedef enum CsHeadResult
{
	CS_HEAD_UNKNOWN,			/* could not read it this time */
	CS_HEAD_NONE,				/* the sink has no head for us yet */
	CS_HEAD_FOUND
} CsHeadResult;

typedef struct CsHeadCheck
{
	int32		sink_id;
	char	   *sink_name;
	char	   *kind;
	char	  **endpoints;
	int			nendpoints;
	char	   *options;
	char	   *path;			/* where the head lives on the sink */
	const char *endpoint;
	CsHttpRequest req;
	bool		writing;		/* a head write, not a read */
	/* read result */
	CsHeadResult result;
	int64		batch_id;
	char	   *batch_hash;		/* "0x…" */
	char	   *detail;
	/* what to write */
	char	   *body;
} CsHeadCheck;

typedef struct CsSinkOps
{
	const char *kind;
	bool		chain;			/* retry with chainstore.retry_base_chain */
	/*
	 * Inside a transaction: build d->payload and d->payload_id, allocated in
	 * the memory context current on entry (not SPI's, which is freed at
	 * commit).
	 */
	void		(*build_payload) (CsDelivery *d);
	/*
	 * Fill d->req for d->step against d->endpoint; or refuse by setting
	 * d->outcome (PERMANENT) and d->detail, e.g. when a secret is missing.
	 */
	void		(*prepare) (CsDelivery *d);
	/* set d->outcome (and attestation, detail, endpoint_failed) from d->req */
	void		(*interpret) (CsDelivery *d);
	/* reconciliation: fill h->req to read (or, if h->writing, write) the head */
	void		(*prepare_head) (CsHeadCheck *h);
	/* after a read: set h->result, h->batch_id, h->batch_hash, h->detail */
	void		(*interpret_head) (CsHeadCheck *h);
} CsSinkOps;

extern const CsSinkOps cs_ipfs_sink;

/* shared helpers for sink kinds */
extern void cs_classify_http(CsDelivery *d);
extern char *cs_option_text(const char *options, const char *key, const char *dflt);
extern bool cs_option_bool(const char *options, const char *key, bool dflt);
extern char *cs_read_secret(const char *name, char **why);

#endif
