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

/*
 * rho and pi combined, in the order of the classic single-pass walk:
 * lane pi_lane[i] receives the previous lane rotated by rho_rot[i].
 */
static const int pi_lane[24] = {
	10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4,
	15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1
};

static const int rho_rot[24] = {
	1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14,
	27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44
};

#define ROTL64(v, n) (((v) << (n)) | ((v) >> (64 - (n))))

static void
keccak_f1600(uint64_t a[25])
{
	for (int round = 0; round < 24; round++)
	{
		uint64_t	c0,
					c1,
					c2,
					c3,
					c4,
					d,
					t;

		/* theta */
		c0 = a[0] ^ a[5] ^ a[10] ^ a[15] ^ a[20];
		c1 = a[1] ^ a[6] ^ a[11] ^ a[16] ^ a[21];
		c2 = a[2] ^ a[7] ^ a[12] ^ a[17] ^ a[22];
		c3 = a[3] ^ a[8] ^ a[13] ^ a[18] ^ a[23];
		c4 = a[4] ^ a[9] ^ a[14] ^ a[19] ^ a[24];
		d = c4 ^ ROTL64(c1, 1);
		a[0] ^= d; a[5] ^= d; a[10] ^= d; a[15] ^= d; a[20] ^= d;
		d = c0 ^ ROTL64(c2, 1);
		a[1] ^= d; a[6] ^= d; a[11] ^= d; a[16] ^= d; a[21] ^= d;
		d = c1 ^ ROTL64(c3, 1);
		a[2] ^= d; a[7] ^= d; a[12] ^= d; a[17] ^= d; a[22] ^= d;
		d = c2 ^ ROTL64(c4, 1);
		a[3] ^= d; a[8] ^= d; a[13] ^= d; a[18] ^= d; a[23] ^= d;
		d = c3 ^ ROTL64(c0, 1);
		a[4] ^= d; a[9] ^= d; a[14] ^= d; a[19] ^= d; a[24] ^= d;

		/* rho and pi */
		t = a[1];
		for (int i = 0; i < 24; i++)
		{
			int			j = pi_lane[i];
			uint64_t	next = a[j];

			a[j] = ROTL64(t, rho_rot[i]);
			t = next;
		}

		/* chi, one row of five lanes at a time */
		for (int y = 0; y < 25; y += 5)
		{
			uint64_t	b0 = a[y],
						b1 = a[y + 1],
						b2 = a[y + 2],
						b3 = a[y + 3],
						b4 = a[y + 4];

			a[y] = b0 ^ (~b1 & b2);
			a[y + 1] = b1 ^ (~b2 & b3);
			a[y + 2] = b2 ^ (~b3 & b4);
			a[y + 3] = b3 ^ (~b4 & b0);
			a[y + 4] = b4 ^ (~b0 & b1);
		}

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
		const uint8_t *b = block + i * 8;

		a[i] ^= (uint64_t) b[0] | ((uint64_t) b[1] << 8) | ((uint64_t) b[2] << 16) |
			((uint64_t) b[3] << 24) | ((uint64_t) b[4] << 32) | ((uint64_t) b[5] << 40) |
			((uint64_t) b[6] << 48) | ((uint64_t) b[7] << 56);
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
