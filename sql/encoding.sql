-- Value encodings, each checked against bytes derived by hand from
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS chainstore CASCADE;
CREATE EXTENSION chainstore;
RESET client_min_messages;
-- docs/canonical-encoding.md section 2.
SET client_min_messages = warning;
CREATE TYPE pair AS (x integer, y text);
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
RESET client_min_messages;

CREATE FUNCTION enc_is(v bytea, expected text) RETURNS text LANGUAGE sql
    RETURN CASE WHEN v = decode(expected, 'hex') THEN 'ok' ELSE 'got ' || encode(v, 'hex') END;

SELECT 'bool'        AS type, enc_is(chainstore.canonical_value(true), '0101')
UNION ALL SELECT 'int2',        enc_is(chainstore.canonical_value(5::int2), '020000000000000005')
UNION ALL SELECT 'int4',        enc_is(chainstore.canonical_value(5::int4), '020000000000000005')
UNION ALL SELECT 'int8 -1',     enc_is(chainstore.canonical_value(-1::int8), '02ffffffffffffffff')
UNION ALL SELECT 'domain',      enc_is(chainstore.canonical_value(5::posint), '020000000000000005')
UNION ALL SELECT 'numeric',     enc_is(chainstore.canonical_value(1.50::numeric), '0300000004312e3530')
UNION ALL SELECT 'numeric 1.5', enc_is(chainstore.canonical_value(1.5::numeric), '0300000003312e35')
UNION ALL SELECT 'numeric NaN', enc_is(chainstore.canonical_value('NaN'::numeric), '03000000034e614e')
UNION ALL SELECT 'float8',      enc_is(chainstore.canonical_value(1.5::float8), '043ff8000000000000')
UNION ALL SELECT 'float4',      enc_is(chainstore.canonical_value(1.5::float4), '043ff8000000000000')
UNION ALL SELECT 'float NaN',   enc_is(chainstore.canonical_value('NaN'::float8), '047ff8000000000000')
UNION ALL SELECT 'float4 NaN',  enc_is(chainstore.canonical_value('NaN'::float4), '047ff8000000000000')
UNION ALL SELECT 'float -0',    enc_is(chainstore.canonical_value('-0'::float8), '048000000000000000')
UNION ALL SELECT 'float inf',   enc_is(chainstore.canonical_value('Infinity'::float8), '047ff0000000000000')
UNION ALL SELECT 'float -inf',  enc_is(chainstore.canonical_value('-Infinity'::float8), '04fff0000000000000')
UNION ALL SELECT 'text',        enc_is(chainstore.canonical_value('abc'::text), '0500000003616263')
UNION ALL SELECT 'text empty',  enc_is(chainstore.canonical_value(''::text), '0500000000')
UNION ALL SELECT 'text utf8',   enc_is(chainstore.canonical_value('é'::text), '0500000002c3a9')
UNION ALL SELECT 'bpchar',      enc_is(chainstore.canonical_value('ab'::char(3)), '0500000003616220')
UNION ALL SELECT 'varchar',     enc_is(chainstore.canonical_value('ab'::varchar(9)), '05000000026162')
UNION ALL SELECT 'name',        enc_is(chainstore.canonical_value('ab'::name), '05000000026162')
UNION ALL SELECT 'bytea',       enc_is(chainstore.canonical_value('\x0102'::bytea), '06000000020102')
UNION ALL SELECT 'timestamptz', enc_is(chainstore.canonical_value('1970-01-01 00:00:01+00'::timestamptz), '0700000000000f4240')
UNION ALL SELECT 'tstz +05',    enc_is(chainstore.canonical_value('1970-01-01 05:00:01+05'::timestamptz), '0700000000000f4240')
UNION ALL SELECT 'tstz inf',    enc_is(chainstore.canonical_value('infinity'::timestamptz), '077fffffffffffffff')
UNION ALL SELECT 'tstz -inf',   enc_is(chainstore.canonical_value('-infinity'::timestamptz), '078000000000000000')
UNION ALL SELECT 'timestamp',   enc_is(chainstore.canonical_value('1970-01-01 00:00:01'::timestamp), '0800000000000f4240')
UNION ALL SELECT 'date',        enc_is(chainstore.canonical_value('1970-01-02'::date), '0900000001')
UNION ALL SELECT 'date -1',     enc_is(chainstore.canonical_value('1969-12-31'::date), '09ffffffff')
UNION ALL SELECT 'date inf',    enc_is(chainstore.canonical_value('infinity'::date), '097fffffff')
UNION ALL SELECT 'time',        enc_is(chainstore.canonical_value('00:00:01'::time), '0a00000000000f4240')
UNION ALL SELECT 'timetz',      enc_is(chainstore.canonical_value('00:00:01+05:30'::timetz), '0b00000000000f424000004d58')
UNION ALL SELECT 'timetz west', enc_is(chainstore.canonical_value('00:00:01-01'::timetz), '0b00000000000f4240fffff1f0')
UNION ALL SELECT 'interval',    enc_is(chainstore.canonical_value('1 mon 2 days 3 seconds'::interval), '0c000000010000000200000000002dc6c0')
UNION ALL SELECT 'uuid',        enc_is(chainstore.canonical_value('00112233-4455-6677-8899-aabbccddeeff'::uuid), '0d00112233445566778899aabbccddeeff')
UNION ALL SELECT 'jsonb object',enc_is(chainstore.canonical_value('{"aa": null, "b": 1}'::jsonb), '0e2100000002000000016203000000013100000002616100')
UNION ALL SELECT 'jsonb array', enc_is(chainstore.canonical_value('[true, "x"]'::jsonb), '0e20000000020101050000000178')
UNION ALL SELECT 'jsonb scalar',enc_is(chainstore.canonical_value('1.0'::jsonb), '0e0300000003312e30')
UNION ALL SELECT 'jsonb dupkey',enc_is(chainstore.canonical_value('{"a": 1, "a": false}'::jsonb), '0e210000000100000001610100')
UNION ALL SELECT 'json',        enc_is(chainstore.canonical_value('{"a" : 1}'::json), '0f000000097b226122203a20317d')
UNION ALL SELECT 'array',       enc_is(chainstore.canonical_value('{1,NULL}'::int[]), '1000000001000000020000000102000000000000000100')
UNION ALL SELECT 'array lb',    enc_is(chainstore.canonical_value('[0:1]={7,8}'::int[]), '10000000010000000200000000020000000000000007020000000000000008')
UNION ALL SELECT 'array empty', enc_is(chainstore.canonical_value('{}'::int[]), '1000000000')
UNION ALL SELECT 'array 2d',    enc_is(chainstore.canonical_value('{{1},{2}}'::int[]), '100000000200000002000000010000000100000001020000000000000001020000000000000002')
UNION ALL SELECT 'composite',   enc_is(chainstore.canonical_value(ROW(1, NULL)::pair), '11000000020000000178020000000000000001000000017900')
UNION ALL SELECT 'enum',        enc_is(chainstore.canonical_value('happy'::mood), '12000000056861707079')
UNION ALL SELECT 'inet (send)', enc_is(chainstore.canonical_value('1.2.3.4'::inet), '7f00000004696e6574000000080220000401020304')
UNION ALL SELECT 'null',        enc_is(chainstore.canonical_value(NULL::int), '00');

-- a type with no binary send function is refused with a clear error
SELECT chainstore.canonical_value('=r/postgres'::aclitem);
