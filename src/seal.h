/*
 * seal.h
 *		Sealing outbox rows into Merkle batches.
 */
#ifndef CHAINSTORE_SEAL_H
#define CHAINSTORE_SEAL_H

#include "datatype/timestamp.h"

#include "hashes.h"

/* seal up to max_records pending versions; returns the batch id or 0 */
extern int64 cs_seal_batch(int max_records);

extern void cs_batch_hash(int64 batch_id, const uint8_t prev[CS_HASH_LEN],
						  const uint8_t root[CS_HASH_LEN], int64 count,
						  TimestampTz sealed_at, uint8_t out[CS_HASH_LEN]);

#endif
