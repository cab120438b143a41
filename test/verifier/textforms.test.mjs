// The verifier's text-form parsers against PostgreSQL's own binary send
// functions, on hand-picked edge cases and random values.  Needs a database
// (CHAINSTORE_TEST_PGURL) but not the chainstore extension.
//
// Send formats used: timestamp[tz] int8 µs since 2000-01-01, date int4 days
// since 2000-01-01, time int8 µs, timetz int8 µs || int4 zone (seconds WEST),
// interval int8 µs || int4 days || int4 months, float4/float8 IEEE bits.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { encodeValue, floatBits, inetSend, makeType as T, parseDate, parseIsoInterval, parseTime, parseTimestamp, parseTimetz } from './encoding.mjs';

const PGURL = process.env.CHAINSTORE_TEST_PGURL;

const SETTINGS = `SET client_encoding = 'UTF8'; SET TimeZone = 'UTC'; SET DateStyle = 'ISO';
SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 3; SET bytea_output = 'hex';`;

/** rows of (kind, text form, send hex) */
function query(sql) {
  const r = spawnSync('psql', ['-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-d', PGURL], {
    input: `${SETTINGS}\n${sql}`,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

const EPOCH_2000_US = 946684800000000n;
const EPOCH_2000_DAYS = 10957;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

const SQL = String.raw`
WITH ts(x) AS (
    SELECT unnest(ARRAY['infinity', '-infinity', '2000-01-01', '1970-01-01', '0001-01-01', '0001-12-31 23:59:59.999999 BC',
                        '4713-01-01 00:00:00 BC', '294276-12-31 23:59:59.999999', '1900-02-28 12:00:00.5', '2100-03-01']::timestamp[])
    UNION ALL
    SELECT (date '4713-01-01 BC' + (random() * 109000000)::int) + (random() * 86400e6)::bigint * interval '1 microsecond'
    FROM generate_series(1, 3000)
), dates(x) AS (
    SELECT unnest(ARRAY['infinity', '-infinity', '2000-01-01', '1970-01-01', '1969-12-31', '4713-11-24 BC', '5874897-12-31',
                        '0001-01-01', '0001-12-31 BC', '1600-02-29', '1900-03-01']::date[])
    UNION ALL
    SELECT date '4713-01-01 BC' + (random() * 2000000000)::int / 1000 FROM generate_series(1, 2000)
), times(x) AS (
    SELECT unnest(ARRAY['00:00', '24:00', '23:59:59.999999', '12:00:00.000001']::time[])
    UNION ALL
    SELECT time '00:00' + (random() * 86400e6)::bigint * interval '1 microsecond' FROM generate_series(1, 1000)
), zones(z) AS (
    SELECT unnest(ARRAY['+00', '+05:30', '-08:00:15', '+15:59', '-15:59', '+14', '-00:00:01'])
    UNION ALL
    SELECT format('%s%s:%s:%s', CASE WHEN random() < 0.5 THEN '-' ELSE '+' END, lpad((random() * 15)::int::text, 2, '0'),
                  lpad((random() * 59)::int::text, 2, '0'), lpad((random() * 59)::int::text, 2, '0'))
    FROM generate_series(1, 300)
), timetzs(x) AS (
    SELECT (t.x::text || z.z)::timetz FROM (SELECT x FROM times LIMIT 60) t CROSS JOIN LATERAL
      (SELECT z FROM zones ORDER BY random() LIMIT 5) z
), intervals(x) AS (
    SELECT unnest(ARRAY['0', '1 year', '-1 year -2 mons +3 days -04:05:06.789', '-0.5 sec', '1 mon -1 day 3 sec',
                        '-178000000 years', '178000000 years', '2562047788 hours', '-2562047788 hours',
                        '0.000001 sec', '-2147483648 days']::interval[])
    UNION ALL
    SELECT make_interval(((random() - 0.5) * 2000)::int, ((random() - 0.5) * 50)::int, 0,
                         ((random() - 0.5) * 1000)::int, 0, 0, 0)
           + ((random() - 0.5) * 1e12)::bigint * interval '1 microsecond'
    FROM generate_series(1, 2000)
), f8(x) AS (
    SELECT unnest(ARRAY['NaN', 'Infinity', '-Infinity', '-0', '0', '5e-324', '1.7976931348623157e308',
                        '2.2250738585072014e-308', '0.1', '1e23']::float8[])
    UNION ALL
    SELECT (random() - 0.5) * 10::float8 ^ ((random() * 600)::int - 300) FROM generate_series(1, 3000)
), f4(x) AS (
    SELECT unnest(ARRAY['NaN', 'Infinity', '-Infinity', '-0', '0', '1e-45', '1.4e-45', '3.4028235e38', '1.1754944e-38',
                        '1e-40', '0.1', '16777217', '1.00000005960464477539062500000001']::float4[])
    UNION ALL
    SELECT ((random() - 0.5) * 10::float8 ^ ((random() * 76)::int - 38))::float4 FROM generate_series(1, 3000)
    UNION ALL
    SELECT ((random() - 0.5) * 1e-39)::float4 FROM generate_series(1, 300)
), inets(x) AS (
    SELECT unnest(ARRAY['1.2.3.4', '1.2.3.4/24', '0.0.0.0/0', '::', '::1', '::ffff:1.2.3.4/100', '2001:db8::1',
                        'fe80::1:2:3:4/64', '1:2:3:4:5:6:7:8', '1::8', '1:0:0:4::8/128']::inet[])
)
SELECT 'timestamp', x::text, encode(timestamp_send(x), 'hex') FROM ts
UNION ALL SELECT 'timestamptz', x::timestamptz::text, encode(timestamptz_send(x::timestamptz), 'hex') FROM ts
UNION ALL SELECT 'date', x::text, encode(date_send(x), 'hex') FROM dates
UNION ALL SELECT 'time', x::text, encode(time_send(x), 'hex') FROM times
UNION ALL SELECT 'timetz', x::text, encode(timetz_send(x), 'hex') FROM timetzs
UNION ALL SELECT 'interval', x::text, encode(interval_send(x), 'hex') FROM intervals
UNION ALL SELECT 'float8', x::text, encode(float8send(x), 'hex') FROM f8
UNION ALL SELECT 'float4', x::text, encode(float4send(x), 'hex') FROM f4
UNION ALL SELECT 'inet', format('%s', x), encode(inet_send(x), 'hex') FROM inets
UNION ALL SELECT 'cidr', format('%s', x::cidr), encode(cidr_send(x::cidr), 'hex') FROM inets WHERE x = network(x)
UNION ALL SELECT 'uuid', format('%s', x), encode(uuid_send(x), 'hex') FROM (SELECT gen_random_uuid() AS x) u
`;

/** Expected send bytes (hex) from our parse of the text form. */
function fromOurs(kind, text) {
  const b = Buffer.alloc(16);
  switch (kind) {
    case 'timestamp':
    case 'timestamptz': {
      const us = parseTimestamp(text, kind === 'timestamptz');
      b.writeBigInt64BE(us === I64_MAX || us === I64_MIN ? us : us - EPOCH_2000_US);
      return b.subarray(0, 8).toString('hex');
    }
    case 'date': {
      const d = parseDate(text);
      b.writeInt32BE(d === 0x7fffffff || d === -0x80000000 ? d : d - EPOCH_2000_DAYS);
      return b.subarray(0, 4).toString('hex');
    }
    case 'time':
      b.writeBigInt64BE(parseTime(text));
      return b.subarray(0, 8).toString('hex');
    case 'timetz': {
      const { micros, offset } = parseTimetz(text);
      b.writeBigInt64BE(micros);
      b.writeInt32BE(-offset, 8); // PostgreSQL stores seconds west
      return b.subarray(0, 12).toString('hex');
    }
    case 'interval': {
      const { months, days, micros } = parseIsoInterval(text);
      b.writeBigInt64BE(micros);
      b.writeInt32BE(days, 8);
      b.writeInt32BE(months, 12);
      return b.toString('hex');
    }
    case 'float8':
      return floatBits(text, false).toString('hex');
    case 'float4': {
      // narrow our binary64 back to binary32 (exact for a real)
      const v = floatBits(text, true).readDoubleBE(0);
      b.writeFloatBE(v);
      return b.subarray(0, 4).toString('hex');
    }
    case 'inet':
    case 'cidr':
      return inetSend(text, kind === 'cidr').toString('hex');
    case 'uuid':
      return encodeValue(T('uuid'), text).subarray(1).toString('hex');
    default:
      throw new Error(kind);
  }
}

test('text-form parsers agree with PostgreSQL send functions', { skip: PGURL ? false : 'CHAINSTORE_TEST_PGURL is not set; skipping the live-database test' }, () => {
  const rows = query(SQL);
  assert.ok(rows.length > 10000, `only ${rows.length} rows`);
  const bad = [];
  for (const [kind, text, send] of rows) {
    let ours;
    try {
      ours = fromOurs(kind, text);
    } catch (e) {
      ours = `error: ${e.message}`;
    }
    // NaN payloads are not compared: the encoding canonicalises every NaN
    if (ours !== send && !(text === 'NaN')) bad.push(`${kind} ${JSON.stringify(text)}: ours ${ours}, PostgreSQL ${send}`);
  }
  assert.deepEqual(bad.slice(0, 20), []);
});
