-- SHA-256 and Keccak-256 against published vectors
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
RESET client_min_messages;
SELECT encode(chainstore.sha256(''), 'hex') = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' AS sha256_empty;
SELECT encode(chainstore.sha256('abc'), 'hex') = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' AS sha256_abc;
SELECT encode(chainstore.keccak256(''), 'hex') = 'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470' AS keccak_empty;
SELECT encode(chainstore.keccak256('abc'), 'hex') = '4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45' AS keccak_abc;
SELECT encode(chainstore.keccak256('The quick brown fox jumps over the lazy dog'), 'hex')
       = '4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15' AS keccak_fox;
-- inputs around the 136-byte rate: every length hashes, and no two collide
SELECT count(DISTINCT chainstore.keccak256(decode(repeat('61', n), 'hex'))) AS distinct_digests
  FROM generate_series(130, 280) n;
SELECT length(chainstore.keccak256(decode(repeat('ff', 100000), 'hex'))) AS long_input_len;
-- strict: NULL in, NULL out
SELECT chainstore.sha256(NULL) IS NULL AS sha_null, chainstore.keccak256(NULL) IS NULL AS keccak_null;
