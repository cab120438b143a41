/*
 * keccak.c
 *		Keccak-256 as used by Ethereum (original Keccak padding 0x01).
 *
 * OpenSSL 3.0 only offers FIPS 202 SHA3-256, whose domain padding (0x06)
 * gives different digests, so chainstore carries its own sponge over
 * Keccak-f[1600].  Rate 1088 bits (136 bytes), capacity 512 bits.
 * Checked against the published vectors in sql/hashes.sql.
 */
#include "hashes.h"

#include <string.h>

#define KECCAK_RATE 136

static const uint64_t round_constants[24] = {
	UINT64_C(0x0000000000000001), UINT64_C(0x0000000000008082),
	UINT64_C(0x800000000000808a), UINT64_C(0x8000000080008000),
	UINT64_C(0x000000000000808b), UINT64_C(0x0000000080000001),
	UINT64_C(0x8000000080008081), UINT64_C(0x8000000000008009),
	UINT64_C(0x000000000000008a), UINT64_C(0x0000000000000088),
	UINT64_C(0x0000000080008009), UINT64_C(0x000000008000000a),
	UINT64_C(0x000000008000808b), UINT64_C(0x800000000000008b),
	UINT64_C(0x8000000000008089), UINT64_C(0x8000000000008003),
	UINT64_C(0x8000000000008002), UINT64_C(0x8000000000000080),
	UINT64_C(0x000000000000800a), UINT64_C(0x800000008000000a),
	UINT64_C(0x8000000080008081), UINT64_C(0x8000000000008080),
	UINT64_C(0x0000000080000001), UINT64_C(0x8000000080008008)
};

/* rotation offsets, indexed by lane x + 5y */
static const unsigned rotations[25] = {
	0, 1, 62, 28, 27,
	36, 44, 6, 55, 20,
	3, 10, 43, 25, 39,
	41, 45, 15, 21, 8,
	18, 2, 61, 56, 14
};

static inline uint64_t
rotl64(uint64_t v, unsigned n)
{
	return n == 0 ? v : (v << n) | (v >> (64 - n));
}

static void
keccak_f1600(uint64_t a[25])
{
	for (int round = 0; round < 24; round++)
	{
		uint64_t	c[5],
					d[5],
					b[25];

		/* theta */
		for (int x = 0; x < 5; x++)
			c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
		for (int x = 0; x < 5; x++)
			d[x] = c[(x + 4) % 5] ^ rotl64(c[(x + 1) % 5], 1);
		for (int i = 0; i < 25; i++)
			a[i] ^= d[i % 5];

		/* rho and pi: lane (x,y) moves to (y, 2x+3y) */
		for (int x = 0; x < 5; x++)
			for (int y = 0; y < 5; y++)
				b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl64(a[x + 5 * y], rotations[x + 5 * y]);

		/* chi */
		for (int y = 0; y < 5; y++)
			for (int x = 0; x < 5; x++)
				a[x + 5 * y] = b[x + 5 * y] ^ (~b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y]);

		/* iota */
		a[0] ^= round_constants[round];
	}
}

/* XOR a block of little-endian lanes into the state */
static void
absorb_block(uint64_t a[25], const uint8_t *block)
{
	for (int i = 0; i < KECCAK_RATE / 8; i++)
	{
		uint64_t	lane = 0;

		for (int j = 7; j >= 0; j--)
			lane = (lane << 8) | block[i * 8 + j];
		a[i] ^= lane;
	}
}

void
cs_keccak256(const void *data, size_t len, uint8_t out[CS_HASH_LEN])
{
	uint64_t	a[25];
	uint8_t		last[KECCAK_RATE];
	const uint8_t *p = data;

	memset(a, 0, sizeof(a));
	while (len >= KECCAK_RATE)
	{
		absorb_block(a, p);
		keccak_f1600(a);
		p += KECCAK_RATE;
		len -= KECCAK_RATE;
	}

	/* final block: message tail, 0x01, zeros, 0x80 (may share a byte) */
	memset(last, 0, sizeof(last));
	if (len > 0)
		memcpy(last, p, len);
	last[len] ^= 0x01;
	last[KECCAK_RATE - 1] ^= 0x80;
	absorb_block(a, last);
	keccak_f1600(a);

	for (int i = 0; i < CS_HASH_LEN; i++)
		out[i] = (uint8_t) (a[i / 8] >> (8 * (i % 8)));
}
