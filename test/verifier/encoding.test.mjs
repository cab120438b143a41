// (c) Hand-derived encoding vectors, one or more per tag, written from
// docs/canonical-encoding.md without a database.  Expected bytes are spelled
// out field by field; big numbers are given as BigInt arithmetic.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  decimalToFloat32, encodeDeletionFromKey, encodeKey, encodeRow, encodeValue, makeType as T, parseArrayText,
  parseRecordText,
} from './encoding.mjs';

const clean = (s) => s.replace(/[\s|]+/g, '').toLowerCase();
const i64 = (n) => BigInt.asUintN(64, BigInt(n)).toString(16).padStart(16, '0');
const i32 = (n) => (Number(n) >>> 0).toString(16).padStart(8, '0');

/** assert encodeValue(type, text) == expected hex (whitespace and | ignored) */
function vec(type, text, expected) {
  assert.equal(encodeValue(type, text).toString('hex'), clean(expected), `${type.name} ${JSON.stringify(text)}`);
}

const inner = T.composite('vt_inner', [
  { name: 'a', type: T('int4') },
  { name: 'b', type: T('text') },
]);
const outer = T.composite('vt_outer', [
  { name: 'x', type: inner },
  { name: 'y', type: T.array(T('numeric')) },
  { name: 'z', type: T('text') },
]);

test('0x00 NULL inside containers; 0x01 boolean', () => {
  vec(T('bool'), 't', '01 01');
  vec(T('bool'), 'f', '01 00');
  vec(T('bool'), null, '00');
});

test('0x02 integers widen to i64', () => {
  vec(T('int4'), '5', '02 0000000000000005');
  vec(T('int2'), '-32768', '02 ffffffffffff8000');
  vec(T('int8'), '-1', '02 ffffffffffffffff');
  vec(T('int8'), '9223372036854775807', '02 7fffffffffffffff');
  vec(T('int8'), '-9223372036854775808', '02 8000000000000000');
});

test('0x03 numeric keeps its text and scale', () => {
  vec(T('numeric'), '1.50', '03 00000004 312e3530');
  vec(T('numeric'), '1.5', '03 00000003 312e35');
  vec(T('numeric'), '-0.001', '03 00000006 2d302e303031');
  vec(T('numeric'), 'NaN', '03 00000003 4e614e');
  vec(T('numeric'), 'Infinity', '03 00000008 496e66696e697479');
  vec(T('numeric'), '-Infinity', '03 00000009 2d496e66696e697479');
});

test('0x04 floats as binary64 bits', () => {
  vec(T('float8'), '1.5', '04 3ff8000000000000');
  vec(T('float8'), '-2', '04 c000000000000000');
  vec(T('float8'), '0.1', '04 3fb999999999999a');
  vec(T('float8'), '-0', '04 8000000000000000');
  vec(T('float8'), '0', '04 0000000000000000');
  vec(T('float8'), 'NaN', '04 7ff8000000000000');
  vec(T('float8'), 'Infinity', '04 7ff0000000000000');
  vec(T('float8'), '-Infinity', '04 fff0000000000000');
  vec(T('float8'), '5e-324', '04 0000000000000001');
  // real 0.1 = 0x3dcccccd: exponent 123 -> 1019 (0x3fb), mantissa 0x4ccccd << 29
  vec(T('float4'), '0.1', '04 3fb99999a0000000');
  vec(T('float4'), '-0', '04 8000000000000000');
  vec(T('float4'), 'NaN', '04 7ff8000000000000');
  vec(T('float4'), '-Infinity', '04 fff0000000000000');
  // smallest subnormal real 2^-149: double exponent 1023-149 = 874 = 0x36a
  vec(T('float4'), '1e-45', '04 36a0000000000000');
  // largest real (2 - 2^-23) * 2^127: exponent 0x47e, 23 one bits << 29
  vec(T('float4'), '3.4028235e+38', '04 47efffffe0000000');
});

test('real parsing rounds once, ties to even', () => {
  // exactly halfway between 1 and 1 + 2^-23: ties to even -> 1
  assert.equal(decimalToFloat32('1.000000059604644775390625'), 1);
  // just above halfway: must round up (via binary64 it would round to 1)
  assert.equal(decimalToFloat32('1.00000005960464477539062500000001'), 1 + 2 ** -23);
  assert.equal(decimalToFloat32('16777217'), 16777216);
  assert.equal(decimalToFloat32('-1.17549435e-38'), -(2 ** -126));
  for (let k = 0; k < 2000; k++) {
    const x = Math.fround((Math.random() - 0.5) * 10 ** Math.floor(Math.random() * 60 - 30));
    assert.equal(decimalToFloat32(x.toPrecision(9)), x);
  }
});

test('0x05 text-like types as UTF-8 strings', () => {
  vec(T('text'), 'héllo', '05 00000006 68 c3a9 6c6c6f');
  vec(T('text'), '', '05 00000000');
  vec(T('varchar'), 'ab', '05 00000002 6162');
  vec(T('bpchar'), 'ab   ', '05 00000005 6162202020'); // padding as stored
  vec(T('name'), 'pg', '05 00000002 7067');
  vec(T('char'), 'x', '05 00000001 78');
  vec(T('text'), '😀', '05 00000004 f09f9880');
});

test('0x06 bytea', () => {
  vec(T('bytea'), '\\x00ff10', '06 00000003 00ff10');
  vec(T('bytea'), '\\x', '06 00000000');
});

test('0x07 timestamptz / 0x08 timestamp', () => {
  vec(T('timestamptz'), '1970-01-01 00:00:00+00', '07 0000000000000000');
  vec(T('timestamptz'), '1970-01-01 05:30:00+05:30', '07 0000000000000000');
  vec(T('timestamptz'), '1969-12-31 23:59:59.999999+00', '07 ffffffffffffffff');
  // 2000-01-01 = 10957 days after 1970-01-01
  vec(T('timestamptz'), '2000-01-01 00:00:00.5+00', `07 ${i64(10957n * 86400n * 1000000n + 500000n)}`);
  vec(T('timestamptz'), 'infinity', '07 7fffffffffffffff');
  vec(T('timestamptz'), '-infinity', '07 8000000000000000');
  // 1 BC = astronomical year 0; 0001-01-01 is 719162 days before 1970-01-01
  vec(T('timestamptz'), '0001-12-31 00:00:00+00 BC', `07 ${i64(-719163n * 86400n * 1000000n)}`);
  vec(T('timestamp'), '2000-01-01 00:00:00', `08 ${i64(10957n * 86400n * 1000000n)}`);
  vec(T('timestamp'), '1970-01-02 00:00:01.000001', `08 ${i64(86401000001n)}`);
  vec(T('timestamp'), 'infinity', '08 7fffffffffffffff');
  vec(T('timestamp'), '-infinity', '08 8000000000000000');
});

test('0x09 date', () => {
  vec(T('date'), '2000-01-01', '09 00002acd'); // 10957
  vec(T('date'), '1969-12-31', '09 ffffffff');
  vec(T('date'), '2000-03-01', `09 ${i32(10957 + 31 + 29)}`); // 2000 is a leap year
  vec(T('date'), '1900-03-01', `09 ${i32(-25508)}`); // 1900 is not
  vec(T('date'), 'infinity', '09 7fffffff');
  vec(T('date'), '-infinity', '09 80000000');
});

test('0x0A time / 0x0B timetz', () => {
  vec(T('time'), '00:00:01.5', '0a 000000000016e360'); // 1500000
  vec(T('time'), '24:00:00', `0a ${i64(86400000000n)}`);
  // 04:05:06.5 = 14706.5 s; +05:30 is 19800 s east
  vec(T('timetz'), '04:05:06.5+05:30', `0b ${i64(14706500000n)} 00004d58`);
  vec(T('timetz'), '04:05:06-08:00:15', `0b ${i64(14706000000n)} ${i32(-28815)}`);
  vec(T('timetz'), '00:00:00+00', '0b 0000000000000000 00000000');
});

test('0x0C interval: months, days, microseconds', () => {
  vec(T('interval'), 'P1Y2M3DT4H5M6.789S', `0c 0000000e 00000003 ${i64(14706789000n)}`);
  vec(T('interval'), 'P-1Y-2M3DT-4H-5M-6.789S', `0c ${i32(-14)} 00000003 ${i64(-14706789000n)}`);
  vec(T('interval'), 'PT0S', '0c 00000000 00000000 0000000000000000');
  vec(T('interval'), 'PT-0.5S', `0c 00000000 00000000 ${i64(-500000n)}`);
  vec(T('interval'), 'P1M-1DT3S', `0c 00000001 ffffffff ${i64(3000000n)}`);
  vec(T('interval'), 'PT2562047788H', `0c 00000000 00000000 ${i64(2562047788n * 3600000000n)}`);
});

test('0x0D uuid', () => {
  vec(T('uuid'), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '0d a0eebc999c0b4ef8bb6d6bb9bd380a11');
});

test('0x0E jsonb with jsonb key order; 0x0F json as stored', () => {
  // keys "a", "b" (length 1, byte order) before "aa" (length 2)
  vec(
    T('jsonb'),
    '{"b": 1, "aa": [1.0, "x"], "a": {"c": null}}',
    `0e 21 00000003
       00000001 61 | 21 00000001 | 00000001 63 | 00
       00000001 62 | 03 00000001 31
       00000002 6161 | 20 00000002 | 03 00000003 312e30 | 05 00000001 78`,
  );
  vec(T('jsonb'), '[true, false, null]', '0e 20 00000003 0101 0100 00');
  vec(T('jsonb'), '"é\\n\\u0001"', '0e 05 00000004 c3a9 0a 01');
  vec(T('jsonb'), '-12.50', '0e 03 00000006 2d31322e3530');
  vec(T('jsonb'), '{}', '0e 21 00000000');
  // equal-length keys by unsigned bytes: "B" (0x42) < "a" < "é" (0xc3a9 is longer)
  vec(T('jsonb'), '{"é": 1, "a": 2, "B": 3}', `0e 21 00000003
       00000001 42 03 00000001 33
       00000001 61 03 00000001 32
       00000002 c3a9 03 00000001 31`);
  vec(T('json'), '{"b":1,  "a":2}', `0f 0000000f ${Buffer.from('{"b":1,  "a":2}').toString('hex')}`);
});

test('0x10 arrays: dimensions, lower bounds, row-major elements', () => {
  vec(T.array(T('int4')), '{1,2}', '10 00000001 | 00000002 00000001 | 02 0000000000000001 | 02 0000000000000002');
  vec(T.array(T('int4')), '{}', '10 00000000');
  vec(
    T.array(T('int4')),
    '[0:1][2:3]={{1,2},{3,NULL}}',
    `10 00000002 | 00000002 00000000 | 00000002 00000002
       | 02 0000000000000001 | 02 0000000000000002 | 02 0000000000000003 | 00`,
  );
  vec(T.array(T('int8')), '[-2:-1]={7,8}', `10 00000001 00000002 ${i32(-2)} 02 0000000000000007 02 0000000000000008`);
  vec(
    T.array(T('text')),
    String.raw`{"",NULL,"NULL","a b","q\"\\"}`,
    `10 00000001 00000005 00000001
       | 05 00000000 | 00 | 05 00000004 4e554c4c | 05 00000003 612062 | 05 00000003 71225c`,
  );
  vec(T.array(inner), String.raw`{"(1,x)",NULL}`, `10 00000001 00000002 00000001
       | 11 00000002 00000001 61 02 0000000000000001 00000001 62 05 00000001 78 | 00`);
  vec(T('int2vector', { isArray: true, vector: true, elem: T('int2') }), '1 3',
    '10 00000001 00000002 00000000 02 0000000000000001 02 0000000000000003');
});

test('0x11 composites: declared order, NULL attributes as 0x00', () => {
  vec(inner, '(1,)', '11 00000002 | 00000001 61 02 0000000000000001 | 00000001 62 00');
  vec(inner, '(7,"")', '11 00000002 | 00000001 61 02 0000000000000007 | 00000001 62 05 00000000');
  vec(inner, '(,)', '11 00000002 | 00000001 61 00 | 00000001 62 00');
  vec(
    outer,
    '("(5,""a,b"")","{1.0,2}",)',
    `11 00000003
       00000001 78 | 11 00000002 00000001 61 02 0000000000000005 00000001 62 05 00000003 612c62
       00000001 79 | 10 00000001 00000002 00000001 03 00000003 312e30 03 00000001 32
       00000001 7a | 00`,
  );
});

test('0x12 enums, domains as their base type', () => {
  vec(T.enum('vt_mood'), 'happy', '12 00000005 6861707079');
  vec(T.domain('vt_posint', T('int4')), '7', '02 0000000000000007');
  vec(T.array(T.domain('vt_posint', T('int4'))), '{7}', '10 00000001 00000001 00000001 02 0000000000000007');
});

test('0x7F other base types: type name and send bytes', () => {
  // inet_send: family (2 = IPv4, 3 = IPv6), bits, is_cidr, address size, address
  vec(T('inet'), '1.2.3.4', '7f 00000004 696e6574 00000008 02 20 00 04 01020304');
  vec(T('inet'), '1.2.3.4/24', '7f 00000004 696e6574 00000008 02 18 00 04 01020304');
  vec(T('inet'), '::ffff:1.2.3.4/100', `7f 00000004 696e6574 00000014 03 64 00 10 00000000000000000000ffff01020304`);
  vec(T('inet'), '2001:db8::1', `7f 00000004 696e6574 00000014 03 80 00 10 20010db8000000000000000000000001`);
  vec(T('cidr'), '10.0.0.0/8', '7f 00000004 63696472 00000008 02 08 01 04 0a000000');
  // citext is sent as its text
  vec(T('citext', { schema: 'public' }), 'Héllo', '7f 00000006 636974657874 00000006 48c3a96c6c6f');
  vec(T('macaddr'), '08:00:2b:01:02:03', '7f 00000007 6d61636164647200000006 08002b010203');
  vec(T('point'), '(1,2)', '7f 00000005 706f696e74 00000010 3ff0000000000000 4000000000000000');
  assert.throws(() => encodeValue(T('money'), '$1.00'), /unsupported in verifier/);
});

test('row encoding: version, kind, label, sorted names, NULLs omitted', () => {
  const fields = [
    { name: 'name', type: T('text'), text: 'x' },
    { name: 'note', type: T('text'), text: null },
    { name: 'id', type: T('int8'), text: '5' },
    { name: 'B', type: T('bool'), text: 't' },
  ];
  assert.equal(
    encodeRow('public.t', 'R', fields).toString('hex'),
    clean(`01 52 | 00000008 7075626c69632e74 | 00000003
           00000001 42 01 01
           00000002 6964 02 0000000000000005
           00000004 6e616d65 05 00000001 78`),
  );
  // UTF-8 byte order of names: a proper prefix first, "z" (7a) before "é" (c3a9)
  const order = ['é', 'ab', 'z', 'a'].map((name) => ({ name, type: T('int2'), text: '0' }));
  assert.equal(
    encodeRow('s.t', 'R', order).toString('hex'),
    clean(`01 52 00000003 732e74 00000004
           00000001 61 02 0000000000000000
           00000002 6162 02 0000000000000000
           00000001 7a 02 0000000000000000
           00000002 c3a9 02 0000000000000000`),
  );
  assert.equal(encodeRow('s.t', 'R', []).toString('hex'), '015200000003732e7400000000');
});

test('key encoding and the D tombstone', () => {
  const key = encodeKey([
    { name: 'id', type: T('int4'), text: '5' },
    { name: 'code', type: T('text'), text: 'k' },
  ]);
  assert.equal(key.toString('hex'), clean('00000002 00000004 636f6465 05 00000001 6b 00000002 6964 02 0000000000000005'));
  assert.equal(
    encodeDeletionFromKey('"My Schema".orders', key).toString('hex'),
    clean(`01 44 00000012 ${Buffer.from('"My Schema".orders').toString('hex')} ${key.toString('hex')}`),
  );
  assert.deepEqual(
    encodeRow('"My Schema".orders', 'D', [
      { name: 'code', type: T('text'), text: 'k' },
      { name: 'id', type: T('int4'), text: '5' },
    ]),
    encodeDeletionFromKey('"My Schema".orders', key),
  );
});

test('text-form parsers', () => {
  assert.deepEqual(parseRecordText('(,"",a,"b""c","d\\\\e")'), [null, '', 'a', 'b"c', 'd\\e']);
  assert.deepEqual(parseArrayText('{{"a,b",c},{NULL,"NULL"}}'), {
    dims: [
      { length: 2, lower: 1 },
      { length: 2, lower: 1 },
    ],
    elements: ['a,b', 'c', null, 'NULL'],
  });
  assert.deepEqual(parseArrayText('{"(1,2),(3,4)";"(0,0),(1,1)"}', ';').elements, ['(1,2),(3,4)', '(0,0),(1,1)']);
  assert.throws(() => parseArrayText('{{1,2},{3}}'), /ragged/);
  assert.throws(() => encodeValue(T('timestamptz'), '2000-01-01 00:00:00'), /bad timestamptz/);
  assert.throws(() => encodeValue(T('bytea'), 'abc'), /hex format/);
});
