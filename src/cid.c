/*
 * cid.c
 *		IPFS content identifiers for the manifests chainstore publishes.
 *
 * cs_ipfs_cid_v1() computes, without a node, the CID Kubo returns for
 * `ipfs add --cid-version=1` with its default import settings:
 *
 *	- fixed-size chunks of 262144 bytes (the last one shorter);
 *	- leaves are raw blocks (codec raw, 0x55) holding the chunk bytes;
 *	- a file of at most one chunk is that single raw leaf (the empty file
 *	  too: the raw block of zero bytes);
 *	- otherwise a balanced tree: consecutive groups of at most 174 children
 *	  under one dag-pb node (codec 0x70), level after level, until one node
 *	  is left.  Every node but the last of its level is full; the last may
 *	  hold a single child, which is not promoted.
 *
 * An internal node is the dag-pb (PBNode) protobuf, Links before Data as
 * go-codec-dagpb writes it:
 *
 *	PBNode {
 *		repeated PBLink Links = 2;	one per child, in file order
 *		optional bytes Data = 1;	the UnixFS Data message below
 *	}
 *	PBLink {
 *		optional bytes Hash = 1;	binary CIDv1 of the child (36 bytes)
 *		optional string Name = 2;	"", present (0x12 0x00)
 *		optional uint64 Tsize = 3;	bytes of all blocks under the link
 *	}
 *	UnixFS Data {
 *		Type = 1: File (2)
 *		filesize = 3: file bytes under the node
 *		blocksizes = 4: file bytes under each child, unpacked
 *	}
 *
 * Tsize of a raw leaf is its length; of an internal node, its encoded
 * length plus the Tsizes of its links.  Every CID here is CIDv1 with a
 * sha2-256 multihash, written in multibase base32 (prefix 'b', lower case,
 * no padding).
 *
 * cs_cid_parse() accepts CIDv0 (base58btc, "Qm...") and CIDv1 in base32;
 * it is strict and bounded so that it can be fed arbitrary text.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "cid.h"
#include "hashes.h"

/* binary CIDv1 over sha2-256: version, codec, 0x12, 0x20, digest */
#define CID_V1_BIN_LEN		(4 + CS_HASH_LEN)
/* binary CIDv0: the bare multihash 0x12 0x20 digest */
#define CID_V0_BIN_LEN		(2 + CS_HASH_LEN)
/* the longest varint (64 bits) takes 10 bytes */
#define UVARINT_MAX			10

/*
 * Longest encoded PBLink we write: Hash (2 + 36), Name (2), Tsize (1 + 10).
 * Its length prefix fits in one byte.
 */
#define PBLINK_MAX_LEN		(2 + CID_V1_BIN_LEN + 2 + 1 + UVARINT_MAX)

static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char base58_alphabet[] =
"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/* one block of the tree, as its parent's link sees it */
typedef struct CidNode
{
	uint8_t		digest[CS_HASH_LEN];
	uint64_t	tsize;			/* bytes of every block in the subtree */
	uint64_t	fsize;			/* file bytes in the subtree */
} CidNode;

static uint8_t *
put_uvarint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80)
	{
		*p++ = (uint8_t) (v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t) v;
	return p;
}

/*
 * Read an unsigned varint as the multiformats spec defines it: at most 9
 * bytes (63 bits) and minimally encoded.
 */
static bool
get_uvarint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *value)
{
	uint64_t	v = 0;
	int			i;

	for (i = 0; i < 9; i++)
	{
		uint8_t		b;

		if (*pos >= len)
			return false;
		b = buf[(*pos)++];
		v |= (uint64_t) (b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0)
		{
			if (b == 0 && i > 0)
				return false;	/* trailing zero group: not minimal */
			*value = v;
			return true;
		}
	}
	return false;
}

/* multibase base32: 'b' then RFC 4648 lower case without padding */
static char *
base32_multibase(const uint8_t *data, size_t len)
{
	char	   *out = palloc((len * 8 + 4) / 5 + 2);
	char	   *o = out;
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		i;

	*o++ = 'b';
	for (i = 0; i < len; i++)
	{
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 5)
		{
			bits -= 5;
			*o++ = base32_alphabet[(acc >> bits) & 31];
		}
	}
	if (bits > 0)
		*o++ = base32_alphabet[(acc << (5 - bits)) & 31];
	*o = '\0';
	return out;
}

char *
cs_cid_format_v1(uint64_t codec, const uint8_t digest[CS_HASH_LEN])
{
	uint8_t		bin[2 + 2 * UVARINT_MAX + CS_HASH_LEN];
	uint8_t    *p = bin;

	p = put_uvarint(p, 1);
	p = put_uvarint(p, codec);
	*p++ = CS_CID_MH_SHA2_256;
	*p++ = CS_HASH_LEN;
	memcpy(p, digest, CS_HASH_LEN);
	p += CS_HASH_LEN;
	return base32_multibase(bin, p - bin);
}

char *
cs_cid_raw(const uint8_t *data, size_t len)
{
	uint8_t		digest[CS_HASH_LEN];

	cs_sha256(data, len, digest);
	return cs_cid_format_v1(CS_CID_CODEC_RAW, digest);
}

/*
 * Encode the dag-pb node of a UnixFS File over children c[0..n-1], whose
 * blocks have codec child_codec, into buf; returns the encoded length.
 * scratch holds the UnixFS message meanwhile.
 */
static size_t
encode_file_node(const CidNode *c, int n, uint8_t child_codec,
				 uint8_t *buf, uint8_t *scratch)
{
	uint8_t    *p = buf;
	uint8_t    *u = scratch;
	uint64_t	fsize = 0;
	int			i;

	/* UnixFS Data: Type = File, filesize, one blocksizes entry per child */
	for (i = 0; i < n; i++)
		fsize += c[i].fsize;
	*u++ = 0x08;				/* field 1, varint */
	*u++ = 0x02;				/* File */
	*u++ = 0x18;				/* field 3, varint */
	u = put_uvarint(u, fsize);
	for (i = 0; i < n; i++)
	{
		*u++ = 0x20;			/* field 4, varint */
		u = put_uvarint(u, c[i].fsize);
	}

	/* PBNode: every Links entry (field 2) first */
	for (i = 0; i < n; i++)
	{
		uint8_t		link[PBLINK_MAX_LEN];
		uint8_t    *l = link;

		*l++ = 0x0a;			/* Hash: field 1, bytes */
		*l++ = CID_V1_BIN_LEN;
		*l++ = 0x01;			/* CID version 1 */
		*l++ = child_codec;
		*l++ = CS_CID_MH_SHA2_256;
		*l++ = CS_HASH_LEN;
		memcpy(l, c[i].digest, CS_HASH_LEN);
		l += CS_HASH_LEN;
		*l++ = 0x12;			/* Name: field 2, empty string */
		*l++ = 0x00;
		*l++ = 0x18;			/* Tsize: field 3, varint */
		l = put_uvarint(l, c[i].tsize);

		*p++ = 0x12;			/* Links: field 2, bytes */
		*p++ = (uint8_t) (l - link);	/* < 128: one varint byte */
		memcpy(p, link, l - link);
		p += l - link;
	}

	/* then Data (field 1) */
	*p++ = 0x0a;
	p = put_uvarint(p, (uint64_t) (u - scratch));
	memcpy(p, scratch, u - scratch);
	p += u - scratch;

	return p - buf;
}

char *
cs_ipfs_cid_v1_chunked(const uint8_t *data, size_t len,
					   size_t chunk_size, int max_links)
{
	CidNode    *nodes;
	size_t		n;
	size_t		i;
	uint8_t		codec;
	size_t		fanout;
	uint8_t    *buf;
	uint8_t    *scratch;
	char	   *result;

	if (chunk_size < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("IPFS chunk size must be positive")));
	if (max_links < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("IPFS nodes need room for at least 2 links")));

	/* one chunk at most, the empty file included: the raw leaf itself */
	if (len <= chunk_size)
		return cs_cid_raw(data, len);

	n = (len - 1) / chunk_size + 1;
	nodes = palloc_extended(n * sizeof(CidNode), MCXT_ALLOC_HUGE);
	for (i = 0; i < n; i++)
	{
		size_t		off = i * chunk_size;
		size_t		clen = Min(chunk_size, len - off);

		CHECK_FOR_INTERRUPTS();
		cs_sha256(data + off, clen, nodes[i].digest);
		nodes[i].tsize = clen;
		nodes[i].fsize = clen;
	}

	/* buffers for the widest node this tree can have */
	fanout = Min((size_t) max_links, n);
	buf = palloc_extended(fanout * (2 + PBLINK_MAX_LEN) +
						  fanout * (1 + UVARINT_MAX) + 4 * UVARINT_MAX,
						  MCXT_ALLOC_HUGE);
	scratch = palloc_extended(fanout * (1 + UVARINT_MAX) + 4 * UVARINT_MAX,
							  MCXT_ALLOC_HUGE);

	/*
	 * Reduce one level at a time.  Parent p replaces nodes[p] once it is
	 * encoded; its children start at p * fanout >= p, and the children of
	 * earlier parents lie before that, so nothing still unread is
	 * overwritten.
	 */
	codec = CS_CID_CODEC_RAW;
	while (n > 1)
	{
		size_t		nparents = (n - 1) / fanout + 1;
		size_t		p;

		for (p = 0; p < nparents; p++)
		{
			size_t		first = p * fanout;
			int			nchildren = (int) Min(fanout, n - first);
			CidNode		parent;
			size_t		enclen;
			int			k;

			CHECK_FOR_INTERRUPTS();
			enclen = encode_file_node(&nodes[first], nchildren, codec,
									  buf, scratch);
			cs_sha256(buf, enclen, parent.digest);
			parent.tsize = enclen;
			parent.fsize = 0;
			for (k = 0; k < nchildren; k++)
			{
				parent.tsize += nodes[first + k].tsize;
				parent.fsize += nodes[first + k].fsize;
			}
			nodes[p] = parent;
		}
		n = nparents;
		codec = CS_CID_CODEC_DAG_PB;
	}

	result = cs_cid_format_v1(codec, nodes[0].digest);
	pfree(scratch);
	pfree(buf);
	pfree(nodes);
	return result;
}

char *
cs_ipfs_cid_v1(const uint8_t *data, size_t len)
{
	return cs_ipfs_cid_v1_chunked(data, len, CS_IPFS_CHUNK_SIZE,
								  CS_IPFS_MAX_LINKS);
}

/* CIDv0: 46 base58btc characters decoding to 0x12 0x20 digest */
static bool
parse_cid_v0(const char *text, size_t len, CsCid *out)
{
	uint8_t		bin[CID_V0_BIN_LEN];
	size_t		i;

	/*
	 * The caller saw "Qm": no leading '1' (a zero byte) can make the number
	 * decode in more than one way.
	 */
	memset(bin, 0, sizeof(bin));
	for (i = 0; i < len; i++)
	{
		const char *d = memchr(base58_alphabet, text[i], 58);
		uint32_t	carry;
		int			j;

		if (d == NULL)
			return false;
		carry = (uint32_t) (d - base58_alphabet);
		for (j = CID_V0_BIN_LEN - 1; j >= 0; j--)
		{
			carry += (uint32_t) bin[j] * 58;
			bin[j] = (uint8_t) carry;
			carry >>= 8;
		}
		if (carry != 0)
			return false;		/* more than 34 bytes */
	}
	if (bin[0] != CS_CID_MH_SHA2_256 || bin[1] != CS_HASH_LEN)
		return false;
	out->version = 0;
	out->codec = CS_CID_CODEC_DAG_PB;
	memcpy(out->digest, bin + 2, CS_HASH_LEN);
	return true;
}

static int
base32_value(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/* CIDv1: base32 (after the 'b') of version 1, codec, sha2-256 multihash */
static bool
parse_cid_v1_base32(const char *text, size_t len, CsCid *out)
{
	uint8_t		bin[CS_CID_MAX_TEXT];	/* 5 bits per character suffice */
	size_t		nbin = 0;
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		i;
	size_t		pos = 0;
	uint64_t	version;
	uint64_t	codec;
	uint64_t	mhcode;
	uint64_t	mhlen;

	for (i = 0; i < len; i++)
	{
		int			v = base32_value(text[i]);

		if (v < 0)
			return false;
		acc = ((acc << 5) | (uint32_t) v) & 0xfff;
		bits += 5;
		if (bits >= 8)
		{
			bits -= 8;
			bin[nbin++] = (uint8_t) (acc >> bits);
		}
	}
	/* a whole spare character, or non-zero padding bits: not canonical */
	if (bits >= 5 || (acc & ((1U << bits) - 1)) != 0)
		return false;

	if (!get_uvarint(bin, nbin, &pos, &version) || version != 1)
		return false;
	if (!get_uvarint(bin, nbin, &pos, &codec))
		return false;
	if (!get_uvarint(bin, nbin, &pos, &mhcode) || mhcode != CS_CID_MH_SHA2_256)
		return false;
	if (!get_uvarint(bin, nbin, &pos, &mhlen) || mhlen != CS_HASH_LEN)
		return false;
	if (nbin - pos != CS_HASH_LEN)
		return false;
	out->version = 1;
	out->codec = codec;
	memcpy(out->digest, bin + pos, CS_HASH_LEN);
	return true;
}

bool
cs_cid_parse(const char *text, CsCid *out)
{
	size_t		len;

	if (text == NULL)
		return false;
	len = strnlen(text, CS_CID_MAX_TEXT + 1);
	if (len == 0 || len > CS_CID_MAX_TEXT)
		return false;
	if (len == 46 && text[0] == 'Q' && text[1] == 'm')
		return parse_cid_v0(text, len, out);
	if (text[0] == 'b')
		return parse_cid_v1_base32(text + 1, len - 1, out);
	return false;
}

/*
 * chainstore.ipfs_cid(data bytea) RETURNS text: the CIDv1 Kubo gives the
 * bytes with `ipfs add --cid-version=1` and default settings.
 */
PG_FUNCTION_INFO_V1(chainstore_ipfs_cid);
Datum
chainstore_ipfs_cid(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	char	   *cid;

	cid = cs_ipfs_cid_v1((const uint8_t *) VARDATA_ANY(data),
						 VARSIZE_ANY_EXHDR(data));
	PG_RETURN_TEXT_P(cstring_to_text(cid));
}

/*
 * chainstore._ipfs_cid_chunked(data bytea, chunk_size int, max_links int):
 * the same DAG with other parameters, so that tests reach deeper trees
 * with little data.
 */
PG_FUNCTION_INFO_V1(chainstore_ipfs_cid_chunked);
Datum
chainstore_ipfs_cid_chunked(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	int32		chunk_size = PG_GETARG_INT32(1);
	int32		max_links = PG_GETARG_INT32(2);
	char	   *cid;

	if (chunk_size < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("chunk_size must be positive")));
	cid = cs_ipfs_cid_v1_chunked((const uint8_t *) VARDATA_ANY(data),
								 VARSIZE_ANY_EXHDR(data),
								 (size_t) chunk_size, max_links);
	PG_RETURN_TEXT_P(cstring_to_text(cid));
}

/* chainstore.cid_is_valid(text) RETURNS boolean */
PG_FUNCTION_INFO_V1(chainstore_cid_is_valid);
Datum
chainstore_cid_is_valid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	size_t		len = VARSIZE_ANY_EXHDR(t);
	char		buf[CS_CID_MAX_TEXT + 1];
	CsCid		cid;

	if (len == 0 || len > CS_CID_MAX_TEXT)
		PG_RETURN_BOOL(false);
	memcpy(buf, VARDATA_ANY(t), len);
	buf[len] = '\0';
	/* an embedded NUL would shorten the string: not a CID either */
	if (strlen(buf) != len)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(cs_cid_parse(buf, &cid));
}
