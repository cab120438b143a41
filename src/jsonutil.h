/*
 * jsonutil.h
 *		Reading untrusted JSON (sink answers, sink options) with jansson.
 *		Kept apart because jansson's names clash with PostgreSQL's fmgr
 *		prototypes.
 */
#ifndef CHAINSTORE_JSONUTIL_H
#define CHAINSTORE_JSONUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* string member of a top-level object, palloc'd; NULL if absent, not a string or not JSON */
extern char *cs_json_string(const char *json, size_t len, const char *key, bool *valid_json);
/* boolean member of a top-level object, dflt if absent */
extern bool cs_json_bool(const char *json, size_t len, const char *key, bool dflt);

/* integer member of a top-level object; false if absent or not an integer */
extern bool cs_json_int64(const char *json, size_t len, const char *key, long long *out);

#endif
