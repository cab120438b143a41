/*
 * breaker.h
 *		Per-endpoint circuit breakers in shared memory.
 */
#ifndef CHAINSTORE_BREAKER_H
#define CHAINSTORE_BREAKER_H

#include "chainstore.h"

/* may a request go to this endpoint now?  (also moves OPEN to HALF_OPEN) */
extern bool cs_breaker_allow(const char *endpoint);
/* record the outcome of a request the breaker allowed */
extern void cs_breaker_record(const char *endpoint, bool ok, const char *error);

/* a request the breaker allowed was not sent after all */
extern void cs_breaker_release(const char *endpoint);

#endif
