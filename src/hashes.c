/*
 * hashes.c
 *		SHA-256 through OpenSSL's EVP interface, and the SQL-callable
 *		chainstore.sha256() / chainstore.keccak256().
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "hashes.h"

static void
sha256_parts(const void *a, size_t alen, const void *b, size_t blen,
			 uint8_t out[CS_HASH_LEN])
{
	/* one context per backend: the capture trigger hashes several times a row */
	static EVP_MD_CTX *ctx = NULL;
	unsigned int outlen = 0;

	if (ctx == NULL)
		ctx = EVP_MD_CTX_new();
	if (ctx == NULL ||
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
		(alen > 0 && EVP_DigestUpdate(ctx, a, alen) != 1) ||
		(blen > 0 && EVP_DigestUpdate(ctx, b, blen) != 1) ||
		EVP_DigestFinal_ex(ctx, out, &outlen) != 1 ||
		outlen != CS_HASH_LEN)
		elog(ERROR, "OpenSSL SHA-256 failed");
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
