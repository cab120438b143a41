/*
 * hashes.h
 *		SHA-256 (OpenSSL) and Keccak-256 (our own sponge) for chainstore.
 */
#ifndef CHAINSTORE_HASHES_H
#define CHAINSTORE_HASHES_H

#include <stddef.h>
#include <stdint.h>

#define CS_HASH_LEN 32

extern void cs_sha256(const void *data, size_t len, uint8_t out[CS_HASH_LEN]);
extern void cs_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
						uint8_t out[CS_HASH_LEN]);
/* bytes from pg_strong_random, buffered per backend */
extern void cs_random_bytes(void *out, size_t len);
extern void cs_keccak256(const void *data, size_t len, uint8_t out[CS_HASH_LEN]);

#endif
