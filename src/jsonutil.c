/*
 * jsonutil.c
 *		Small accessors over jansson for untrusted JSON.
 */
#include "postgres.h"

#include <jansson.h>

#include "jsonutil.h"

static json_t *
load(const char *json, size_t len)
{
	json_error_t err;

	if (json == NULL)
		return NULL;
	/* no duplicate keys accepted, no trailing garbage */
	return json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
}

char *
cs_json_string(const char *json, size_t len, const char *key, bool *valid_json)
{
	json_t	   *root = load(json, len);
	json_t	   *v;
	char	   *result = NULL;

	if (valid_json)
		*valid_json = (root != NULL && json_is_object(root));
	if (root == NULL)
		return NULL;
	v = json_is_object(root) ? json_object_get(root, key) : NULL;
	if (v && json_is_string(v))
		result = pnstrdup(json_string_value(v), json_string_length(v));
	json_decref(root);
	return result;
}

bool
cs_json_bool(const char *json, size_t len, const char *key, bool dflt)
{
	json_t	   *root = load(json, len);
	json_t	   *v;
	bool		result = dflt;

	if (root == NULL)
		return dflt;
	v = json_is_object(root) ? json_object_get(root, key) : NULL;
	if (v && json_is_boolean(v))
		result = json_is_true(v);
	json_decref(root);
	return result;
}

bool
cs_json_int64(const char *json, size_t len, const char *key, long long *out)
{
	json_t	   *root = load(json, len);
	json_t	   *v;
	bool		ok = false;

	if (root == NULL)
		return false;
	v = json_is_object(root) ? json_object_get(root, key) : NULL;
	if (v && json_is_integer(v))
	{
		*out = (long long) json_integer_value(v);
		ok = true;
	}
	json_decref(root);
	return ok;
}
