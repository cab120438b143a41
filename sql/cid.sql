-- IPFS CIDs: chainstore.ipfs_cid() against the JS IPFS importer, and
-- chainstore.cid_is_valid() on valid and malformed CIDs.  Every expected
-- CID below was printed by test/cid/crosscheck.mjs (ipfs-unixfs-importer
-- with Kubo's `ipfs add --cid-version=1` settings), not by the C code.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
RESET client_min_messages;

-- n bytes of i mod 251, as pattern() in test/cid/crosscheck.mjs
CREATE FUNCTION pg_temp.cid_pattern(n integer) RETURNS bytea
    LANGUAGE sql IMMUTABLE
    RETURN substring(decode(repeat((SELECT string_agg(lpad(to_hex(b), 2, '0'), '' ORDER BY b)
                                      FROM generate_series(0, 250) b), n / 251 + 1), 'hex')
                     FROM 1 FOR n);
SELECT length(pg_temp.cid_pattern(1000)) AS len, encode(substring(pg_temp.cid_pattern(1000) FROM 250 FOR 4), 'hex') AS wrap;

-- Kubo's defaults (262144-byte chunks, 174 links) through ipfs_cid(); deeper
-- trees through _ipfs_cid_chunked(data, chunk_size, max_links).  A file of
-- one chunk is its raw leaf (bafkrei...), more chunks give dag-pb (bafybei...).
SELECT name, CASE WHEN got = expected THEN 'ok' ELSE 'GOT ' || got END AS result
  FROM (VALUES
    ('hello world\n', chainstore.ipfs_cid(convert_to(E'hello world\n', 'UTF8')),
     'bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4'),
    ('empty', chainstore.ipfs_cid('\x'::bytea),
     'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'),
    ('one zero byte', chainstore.ipfs_cid('\x00'::bytea),
     'bafkreidogqfzz75tpkmjzjke425xqcrmpcib2p5tg44hnbirumdbpl5adu'),
    ('json manifest', chainstore.ipfs_cid(convert_to('{"batch_id":1,"root":"0x00"}', 'UTF8')),
     'bafkreihnxvmkrr3ggiarl2yex33ekzeg46w36qlz7z3d6zym7prxpfr2ia'),
    ('pattern 262143', chainstore.ipfs_cid(pg_temp.cid_pattern(262143)),
     'bafkreiagptg6ztonoojy4wflk3wwusl5xt4vcy6uult4wa7oemsjtxhjsu'),
    ('pattern 262144 (one full chunk)', chainstore.ipfs_cid(pg_temp.cid_pattern(262144)),
     'bafkreibruh455iawsviqslif5c7uurdcfdemh22mtnytyzvnzn75kpejxy'),
    ('pattern 262145 (two leaves)', chainstore.ipfs_cid(pg_temp.cid_pattern(262145)),
     'bafybeiexg2oqkfnj56l7fcmawswqbijt5shq4b5rg6a546uwpkqqzwjioi'),
    ('pattern 524288 (two full leaves)', chainstore.ipfs_cid(pg_temp.cid_pattern(524288)),
     'bafybeihjlsmgtdumwxouubhh32wpo5k73zuptoz5bcxxcx3tflxmhyct2a'),
    ('pattern 1000000 (four leaves)', chainstore.ipfs_cid(pg_temp.cid_pattern(1000000)),
     'bafybeibx62obrkybp46hx3ivh53q4rnptgkunpgtwiib5lfelfgt2ekihm'),
    ('chunked 10/16/4 (one chunk)', chainstore._ipfs_cid_chunked(pg_temp.cid_pattern(10), 16, 4),
     'bafkreia7qjnkf4acb3347eo7umg2izunpeof2sbe7shecnklrhwak6k2wm'),
    ('chunked 65/16/4 (lone leaf under a node)', chainstore._ipfs_cid_chunked(pg_temp.cid_pattern(65), 16, 4),
     'bafybeieixyuxszinqsy4zudruq5y3iplxpijuiql567ljvhxbduftqythy'),
    ('chunked 256/16/4 (full two layers)', chainstore._ipfs_cid_chunked(pg_temp.cid_pattern(256), 16, 4),
     'bafybeicqi4rfzx36lnuhohlrzwyqsvgxr2wfa7ah6367j3ibvbzlxfe4ei'),
    ('chunked 257/16/4 (three layers)', chainstore._ipfs_cid_chunked(pg_temp.cid_pattern(257), 16, 4),
     'bafybeictrzz5w6pxw3rippzzwixg3jafxot4yapgssbcwyw4gyyjlkrtba'),
    ('chunked 100/1/2 (seven layers)', chainstore._ipfs_cid_chunked(pg_temp.cid_pattern(100), 1, 2),
     'bafybeiaafw5hhcvt5ofp3okx45sbscrnafdbtyzkvu5mktv7w444uarala'),
    ('chunked 174001/1000/174 (175 leaves)', chainstore._ipfs_cid_chunked(pg_temp.cid_pattern(174001), 1000, 174),
     'bafybeigrwjvg4wjwdr5m7c5jbw6tzgmijifqqrjtc4wfqh33j5vbmls2zm'),
    ('chunked 2097153/262144/2 (4-byte varints)', chainstore._ipfs_cid_chunked(pg_temp.cid_pattern(2097153), 262144, 2),
     'bafybeibiwdy7watm4qi6g2wtevlurr2o5nmyaic7axtc7rj6qmofxezgua')
  ) v(name, got, expected);

-- the chunked variant with Kubo's parameters is ipfs_cid()
SELECT chainstore._ipfs_cid_chunked(pg_temp.cid_pattern(n), 262144, 174) = chainstore.ipfs_cid(pg_temp.cid_pattern(n)) AS same,
       n
  FROM unnest(ARRAY[0, 1, 262144, 262145, 1000000]) n;
-- bad parameters
SELECT chainstore._ipfs_cid_chunked('\x0102', 0, 4);
SELECT chainstore._ipfs_cid_chunked('\x0102', 1, 1);
-- strict
SELECT chainstore.ipfs_cid(NULL) IS NULL AS cid_null, chainstore.cid_is_valid(NULL) IS NULL AS valid_null;

-- cid_is_valid: CIDv0 (base58btc "Qm...") and CIDv1 (base32 "b...") over
-- sha2-256 only; texts built by crosscheck.mjs --cid-cases, which also
-- checks each verdict against multiformats.
SELECT name, chainstore.cid_is_valid(cid) AS valid,
       CASE WHEN chainstore.cid_is_valid(cid) = expected THEN 'ok' ELSE 'WRONG' END AS result
  FROM (VALUES
    ('v1 raw (sha2-256)', 'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', true),
    ('v1 dag-pb', 'bafybeifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', true),
    ('v1 dag-cbor', 'bafyreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', true),
    ('v1 dag-json (2-byte codec varint)', 'baguqeeraug73ydmprjgbzgecmmbazorq6arvacz4naivd2kb7bb5gaht3c7a', true),
    ('v0', 'QmZE3vJqqFzE7vM9YSTkmS94mMP85tr8RRAgjAcF1iA3GR', true),
    ('v0 zero digest', 'QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51', true),
    ('v0 all-ones digest', 'QmfZy5bvk7a3DQAjCbGNtmrPXWkyVvPrdnZMyBZ5q5ieKG', true),
    ('v1 other digest byte', 'bafkreiflvov2xk5lvov2xk5lvov2xk5lvov2xk5lvov2xk5lvov2xk5lvm', true),
    ('empty', '', false),
    ('prefix only', 'b', false),
    ('Qm only', 'Qm', false),
    ('v1 truncated by one char', 'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yx', false),
    ('v1 truncated by 8 chars (31-byte digest)', 'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyip', false),
    ('v1 one char too many', 'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxya', false),
    ('v1 5 trailing bytes', 'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxyaaaaaaaa', false),
    ('v1 with = padding', 'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy======', false),
    ('v1 stray padding bits', 'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxz', false),
    ('v1 bad base32 char 1', 'bafkreifbx16a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', false),
    ('v1 bad base32 char 8', 'bafkreifbx86a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', false),
    ('v1 bad base32 char 0', 'bafkreifbx06a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', false),
    ('v1 bad base32 char -', 'bafkreifbx-6a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', false),
    ('v1 non-ASCII char', E'bafkreifbx\u00e96a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', false),
    ('v1 upper case (base32upper)', 'BAFKREIFBX66A3D4KJQOJRATDAIGLUMHQENIAWPDICFI6SQPYIPJQB46YXY', false),
    ('v1 upper case after b', 'bAFKREIFBX66A3D4KJQOJRATDAIGLUMHQENIAWPDICFI6SQPYIPJQB46YXY', false),
    ('v1 one upper-case char', 'bafkreifbx66A3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', false),
    ('v1 leading space', ' bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', false),
    ('v1 trailing newline', E'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy\n', false),
    ('v1 multihash length 31', 'bafkreh5bx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46y', false),
    ('v1 multihash length 33', 'bafkreinbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxyaa', false),
    ('v1 length 32, 31 bytes', 'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46y', false),
    ('v1 length 32, 33 bytes', 'bafkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxyaa', false),
    ('v1 sha2-512', 'bafkrgqfbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yx2q37panr6feyheyqjrqedf2gdycgualhrubcupjih4ehuya6pml4', false),
    ('v1 identity multihash', 'bafkqaifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', false),
    ('v1 blake2b-256', 'bafk2bzacecq37panr6feyheyqjrqedf2gdycgualhrubcupjih4ehuya6pml4', false),
    ('version 0 bytes in base32', 'bciqkdp54bwhyuta4tcbggaqmxiypai2qbm6gqekr5fa7qq6tadz5rpq', false),
    ('version 2', 'bajkreifbx66a3d4kjqojratdaiglumhqeniawpdicfi6sqpyipjqb46yxy', false),
    ('version 1 as non-minimal varint', 'bqeafkeraug73ydmprjgbzgecmmbazorq6arvacz4naivd2kb7bb5gaht3c7a', false),
    ('codec as non-minimal varint', 'bahkqaeraug73ydmprjgbzgecmmbazorq6arvacz4naivd2kb7bb5gaht3c7a', false),
    ('codec varint of 10 bytes', 'bah77777777777777aejcbin7xqgy7csmdsmieyycbs5db4bdkafty2arkhuud6cd2maphwf6', false),
    ('codec varint cut short', 'bah7q', false),
    ('v0 truncated', 'QmZE3vJqqFzE7vM9YSTkmS94mMP85tr8RRAgjAcF1iA3G', false),
    ('v0 one char too many', 'QmZE3vJqqFzE7vM9YSTkmS94mMP85tr8RRAgjAcF1iA3GRa', false),
    ('v0 bad base58 char 0', 'QmZE3vJqqF0E7vM9YSTkmS94mMP85tr8RRAgjAcF1iA3GR', false),
    ('v0 bad base58 char O', 'QmZE3vJqqFOE7vM9YSTkmS94mMP85tr8RRAgjAcF1iA3GR', false),
    ('v0 bad base58 char l', 'QmZE3vJqqFlE7vM9YSTkmS94mMP85tr8RRAgjAcF1iA3GR', false),
    ('v0 with leading 1', '1QmZE3vJqqFzE7vM9YSTkmS94mMP85tr8RRAgjAcF1iA3GR', false),
    ('Qm then 44 z (beyond 0x12 0x20)', 'Qmzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz', false),
    ('Qm then 44 1 (below 0x12 0x20)', 'Qm11111111111111111111111111111111111111111111', false),
    ('v0 bytes with z prefix (base58btc multibase)', 'zQmZE3vJqqFzE7vM9YSTkmS94mMP85tr8RRAgjAcF1iA3GR', false),
    ('v1 in base58btc', 'zb2rhhXgQN457FF57ChXYE3TLXXXd6coPAsLBxm2qVpmz8DU9', false),
    ('v1 in base16', 'f01551220a1bfbc0d8f8a4c1c988263020cba30f023500b3c681151e941f843d300f3d8be', false),
    ('100 chars', 'baaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', false),
    ('101 chars', 'baaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', false)
  ) c(name, cid, expected);

-- every proper prefix of a valid CID is malformed, and so are huge inputs
SELECT count(*) FILTER (WHERE chainstore.cid_is_valid(left(c, n))) AS valid_prefixes, count(*) AS prefixes
  FROM (VALUES ('bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4'),
               ('QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51')) v(c),
       generate_series(0, length(c) - 1) n;
SELECT chainstore.cid_is_valid(repeat('b', 1000000)) AS huge_b,
       chainstore.cid_is_valid('bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4' || repeat('a', 1000000)) AS huge_tail;
-- what ipfs_cid() returns is valid
SELECT bool_and(chainstore.cid_is_valid(chainstore.ipfs_cid(pg_temp.cid_pattern(n)))) AS all_valid
  FROM unnest(ARRAY[0, 5, 262144, 262145, 600000]) n;

-- anyone may compute and check CIDs; the test helper stays private
SELECT p.proname, has_function_privilege('chainstore_reader', p.oid, 'EXECUTE') AS reader_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'chainstore'::regnamespace
   AND p.proname IN ('ipfs_cid', 'cid_is_valid', '_ipfs_cid_chunked')
 ORDER BY 1;
