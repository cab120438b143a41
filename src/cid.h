/*
 * cid.h
 *		IPFS content identifiers: the CIDv1 Kubo computes for
 *		`ipfs add --cid-version=1` (UnixFS file, raw leaves, balanced DAG),
 *		the CID of a single raw block, and a strict CID parser.
 *
 * Include after postgres.h.
 */
#ifndef CHAINSTORE_CID_H
#define CHAINSTORE_CID_H

#include <stddef.h>
#include <stdint.h>

#include "hashes.h"

/* multicodec codes */
#define CS_CID_CODEC_RAW		0x55
#define CS_CID_CODEC_DAG_PB		0x70
#define CS_CID_MH_SHA2_256		0x12

/* Kubo's `ipfs add` defaults: chunker size-262144, 174 links per node */
#define CS_IPFS_CHUNK_SIZE		262144
#define CS_IPFS_MAX_LINKS		174

/* longest CID text cs_cid_parse() looks at; anything longer is invalid */
#define CS_CID_MAX_TEXT			100

typedef struct CsCid
{
	int			version;		/* 0 or 1 */
	uint64_t	codec;			/* 0x70 (dag-pb) for every CIDv0 */
	uint8_t		digest[CS_HASH_LEN];	/* the sha2-256 digest */
} CsCid;

/* the CIDv1 (base32, "bafy..." or "bafk...") Kubo gives for these bytes */
extern char *cs_ipfs_cid_v1(const uint8_t *data, size_t len);

/* same with another chunk size and fan-out (for tests: deep trees cheaply) */
extern char *cs_ipfs_cid_v1_chunked(const uint8_t *data, size_t len,
									size_t chunk_size, int max_links);

/* CIDv1 of a single block of codec raw: "bafkrei..." */
extern char *cs_cid_raw(const uint8_t *data, size_t len);

/* text form of a CIDv1 (multibase base32, lower case) */
extern char *cs_cid_format_v1(uint64_t codec, const uint8_t digest[CS_HASH_LEN]);

/*
 * Parse a CIDv0 ("Qm...", base58btc) or CIDv1 ('b' + base32 lower case)
 * whose multihash is sha2-256 with a 32-byte digest.  Anything else,
 * including other multibases, hashes or non-canonical encodings, gives
 * false and leaves *out unspecified.
 */
extern bool cs_cid_parse(const char *text, CsCid *out);

#endif
