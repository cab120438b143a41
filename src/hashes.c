/*
 * hashes.c
 *		SHA-256 through OpenSSL's EVP interface, and the SQL-callable
 *		chainstore.sha256() / chainstore.keccak256().
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "fmgr.h"
#include "port.h"
#include "utils/builtins.h"

#include "hashes.h"

static void
sha256_parts(const void *a, size_t alen, const void *b, size_t blen,
			 uint8_t out[CS_HASH_LEN])
{
	/*
	 * One context and one fetched digest per backend: the capture trigger
	 * hashes several times a row, and OpenSSL 3 would otherwise look the
	 * implementation up on every init.
	 */
	static EVP_MD_CTX *ctx = NULL;
	static EVP_MD *md = NULL;
	unsigned int outlen = 0;

	if (md == NULL)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (ctx == NULL)
		ctx = EVP_MD_CTX_new();
	if (ctx == NULL || md == NULL ||
		EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
		(alen > 0 && EVP_DigestUpdate(ctx, a, alen) != 1) ||
		(blen > 0 && EVP_DigestUpdate(ctx, b, blen) != 1) ||
		EVP_DigestFinal_ex(ctx, out, &outlen) != 1 ||
		outlen != CS_HASH_LEN)
		elog(ERROR, "OpenSSL SHA-256 failed");
}

/*
 * Random bytes for salts, from pg_strong_random in 4 kB refills: one call per
 * 256 salts instead of one per row.  The buffer is per backend process and
 * each byte is handed out once.
 */
void
cs_random_bytes(void *out, size_t len)
{
	static uint8_t pool[4096];
	static size_t avail = 0;

	Assert(len <= sizeof(pool));
	if (avail < len)
	{
		if (!pg_strong_random(pool, sizeof(pool)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random bytes")));
		avail = sizeof(pool);
	}
	memcpy(out, pool + sizeof(pool) - avail, len);
	explicit_bzero(pool + sizeof(pool) - avail, len);
	avail -= len;
}

void
cs_sha256(const void *data, size_t len, uint8_t out[CS_HASH_LEN])
{
	sha256_parts(data, len, NULL, 0, out);
}

void
cs_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
			uint8_t out[CS_HASH_LEN])
{
	sha256_parts(a, alen, b, blen, out);
}

static bytea *
hash_to_bytea(const uint8_t digest[CS_HASH_LEN])
{
	bytea	   *result = palloc(VARHDRSZ + CS_HASH_LEN);

	SET_VARSIZE(result, VARHDRSZ + CS_HASH_LEN);
	memcpy(VARDATA(result), digest, CS_HASH_LEN);
	return result;
}

PG_FUNCTION_INFO_V1(chainstore_sha256);
Datum
chainstore_sha256(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	uint8_t		digest[CS_HASH_LEN];

	cs_sha256(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), digest);
	PG_RETURN_BYTEA_P(hash_to_bytea(digest));
}

PG_FUNCTION_INFO_V1(chainstore_keccak256);
Datum
chainstore_keccak256(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	uint8_t		digest[CS_HASH_LEN];

	cs_keccak256(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), digest);
	PG_RETURN_BYTEA_P(hash_to_bytea(digest));
}
