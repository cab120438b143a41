// encoding.mjs — independent implementation of chainstore's canonical row
// encoding (docs/canonical-encoding.md, sections 1, 2, 4 and 5).
//
// Values arrive as PostgreSQL text forms produced under fixed settings
// (TimeZone=UTC, DateStyle=ISO, IntervalStyle=iso_8601, extra_float_digits=3,
// bytea_output=hex, client_encoding=UTF8); see export.sql.  A SQL NULL is
// JavaScript `null`.  Each value comes with a type descriptor (see makeType
// and typesFromExport below) built from the catalogs.

const TEXT = new TextEncoder();

// ---------------------------------------------------------------------------
// Byte writer (all integers big-endian)
// ---------------------------------------------------------------------------

export class ByteWriter {
  constructor() {
    this.parts = [];
  }
  bytes(b) {
    this.parts.push(Buffer.from(b));
    return this;
  }
  u8(n) {
    if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new RangeError(`u8 out of range: ${n}`);
    return this.bytes([n]);
  }
  u32(n) {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`u32 out of range: ${n}`);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return this.bytes(b);
  }
  i32(n) {
    if (!Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff) throw new RangeError(`i32 out of range: ${n}`);
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return this.bytes(b);
  }
  i64(n) {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(n)); // throws on overflow
    return this.bytes(b);
  }
  u64(n) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    return this.bytes(b);
  }
  /** str(x) = u32 length || bytes; strings are UTF-8 encoded. */
  str(x) {
    const b = typeof x === 'string' ? utf8(x) : Buffer.from(x);
    return this.u32(b.length).bytes(b);
  }
  toBuffer() {
    return Buffer.concat(this.parts);
  }
}

export function utf8(s) {
  return Buffer.from(TEXT.encode(s));
}

/** Unsigned byte-wise comparison of UTF-8 names (a proper prefix sorts first). */
export function compareNames(a, b) {
  return Buffer.compare(utf8(a), utf8(b));
}

/** jsonb key order: shorter keys (in bytes) first, then unsigned byte order. */
export function compareJsonbKeys(a, b) {
  const ba = utf8(a);
  const bb = utf8(b);
  return ba.length - bb.length || Buffer.compare(ba, bb);
}

export class UnsupportedType extends Error {}

// ---------------------------------------------------------------------------
// Tags
// ---------------------------------------------------------------------------

export const TAG = {
  NULL: 0x00,
  BOOL: 0x01,
  INT: 0x02,
  NUMERIC: 0x03,
  FLOAT: 0x04,
  TEXT: 0x05,
  BYTEA: 0x06,
  TIMESTAMPTZ: 0x07,
  TIMESTAMP: 0x08,
  DATE: 0x09,
  TIME: 0x0a,
  TIMETZ: 0x0b,
  INTERVAL: 0x0c,
  UUID: 0x0d,
  JSONB: 0x0e,
  JSON: 0x0f,
  ARRAY: 0x10,
  COMPOSITE: 0x11,
  ENUM: 0x12,
  JSON_ARRAY: 0x20,
  JSON_OBJECT: 0x21,
  OTHER: 0x7f,
};

// Built-in pg_catalog types with a dedicated tag.
const BUILTIN_TAGS = {
  bool: TAG.BOOL,
  int2: TAG.INT,
  int4: TAG.INT,
  int8: TAG.INT,
  numeric: TAG.NUMERIC,
  float4: TAG.FLOAT,
  float8: TAG.FLOAT,
  text: TAG.TEXT,
  varchar: TAG.TEXT,
  bpchar: TAG.TEXT,
  name: TAG.TEXT,
  char: TAG.TEXT,
  bytea: TAG.BYTEA,
  timestamptz: TAG.TIMESTAMPTZ,
  timestamp: TAG.TIMESTAMP,
  date: TAG.DATE,
  time: TAG.TIME,
  timetz: TAG.TIMETZ,
  interval: TAG.INTERVAL,
  uuid: TAG.UUID,
  jsonb: TAG.JSONB,
  json: TAG.JSON,
};

// ---------------------------------------------------------------------------
// Type descriptors
//
// A descriptor is { name, schema, typtype, category, isArray, elem, delim,
// base, attrs, vector }:
//   name/schema  pg_type.typname / its namespace
//   typtype      'b' base, 'c' composite, 'd' domain, 'e' enum, 'r' range, ...
//   isArray      true for true arrays (typsubscript = array_subscript_handler)
//   elem, delim  element descriptor and its typdelim (arrays)
//   base         base descriptor (domains)
//   attrs        [{ name, type }] non-dropped attributes in order (composites)
//   vector       true for int2vector/oidvector (space-separated text form)
// ---------------------------------------------------------------------------

/** Convenience constructor, mostly for tests: makeType('int4'), makeType.array(t), ... */
export function makeType(name, extra = {}) {
  return { name, schema: 'pg_catalog', typtype: 'b', isArray: false, ...extra };
}
makeType.array = (elem, delim = ',') => ({
  name: '_' + elem.name, schema: elem.schema, typtype: 'b', isArray: true, elem, delim,
});
makeType.composite = (name, attrs) => ({ name, schema: 'public', typtype: 'c', isArray: false, attrs });
makeType.domain = (name, base) => ({ name, schema: 'public', typtype: 'd', isArray: false, base });
makeType.enum = (name) => ({ name, schema: 'public', typtype: 'e', isArray: false });

/**
 * Link the flat type catalogue of an export ({oid: {...}}, see export.sql)
 * into descriptors.  Returns a Map oid(string) -> descriptor.
 */
export function typesFromExport(catalog) {
  const out = new Map();
  for (const [oid, t] of Object.entries(catalog)) {
    out.set(String(oid), {
      oid: String(oid),
      name: t.typname,
      schema: t.nspname,
      typtype: t.typtype,
      category: t.typcategory,
      isArray: t.typsubscript === 'array_subscript_handler' && String(t.typelem) !== '0',
      vector: t.nspname === 'pg_catalog' && (t.typname === 'int2vector' || t.typname === 'oidvector'),
      delim: t.elem_delim ?? ',',
      hasSend: t.has_send,
      _elem: t.typelem,
      _base: t.typbasetype,
      _attrs: t.attrs,
    });
  }
  const get = (oid) => {
    const d = out.get(String(oid));
    if (!d) throw new Error(`type ${oid} missing from export`);
    return d;
  };
  for (const d of out.values()) {
    if (d.isArray) d.elem = get(d._elem);
    if (d.typtype === 'd') d.base = get(d._base);
    if (d.typtype === 'c') d.attrs = (d._attrs ?? []).map((a) => ({ name: a.name, type: get(a.type) }));
    delete d._elem;
    delete d._base;
    delete d._attrs;
  }
  return out;
}

function stripDomains(type) {
  while (type.typtype === 'd') type = type.base;
  return type;
}

function describe(type) {
  return type.schema && type.schema !== 'pg_catalog' ? `${type.schema}.${type.name}` : type.name;
}

/** The tag a column of this type is encoded with (throws for refused types). */
export function tagOf(type) {
  type = stripDomains(type);
  if (type.isArray) return TAG.ARRAY;
  if (type.typtype === 'c') return TAG.COMPOSITE;
  if (type.typtype === 'e') return TAG.ENUM;
  if (type.schema === 'pg_catalog' && type.name in BUILTIN_TAGS) return BUILTIN_TAGS[type.name];
  if (type.typtype === 'p') throw new UnsupportedType(`pseudo-type ${describe(type)} cannot be encoded`);
  return TAG.OTHER;
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/** Append the tagged value of `text` (a text form, or null) of type `type`. */
export function writeValue(w, type, text) {
  if (text === null || text === undefined) {
    w.u8(TAG.NULL);
    return w;
  }
  type = stripDomains(type);
  const tag = tagOf(type);
  w.u8(tag);
  switch (tag) {
    case TAG.BOOL:
      if (text !== 't' && text !== 'f') throw new Error(`bad boolean ${JSON.stringify(text)}`);
      return w.u8(text === 't' ? 1 : 0);
    case TAG.INT:
      if (!/^-?\d+$/.test(text)) throw new Error(`bad integer ${JSON.stringify(text)}`);
      return w.i64(BigInt(text));
    case TAG.NUMERIC:
      checkNumericText(text);
      return w.str(text);
    case TAG.FLOAT:
      return w.bytes(floatBits(text, type.name === 'float4'));
    case TAG.TEXT:
      return w.str(type.name === 'char' ? charBytes(text) : text);
    case TAG.BYTEA:
      return w.str(parseByteaHex(text));
    case TAG.TIMESTAMPTZ:
      return w.i64(parseTimestamp(text, true));
    case TAG.TIMESTAMP:
      return w.i64(parseTimestamp(text, false));
    case TAG.DATE:
      return w.i32(parseDate(text));
    case TAG.TIME:
      return w.i64(parseTime(text));
    case TAG.TIMETZ: {
      const { micros, offset } = parseTimetz(text);
      return w.i64(micros).i32(offset);
    }
    case TAG.INTERVAL: {
      const { months, days, micros } = parseIsoInterval(text);
      return w.i32(months).i32(days).i64(micros);
    }
    case TAG.UUID:
      return w.bytes(parseUuid(text));
    case TAG.JSONB:
      return writeJsonValue(w, parseJson(text));
    case TAG.JSON:
      return w.str(text);
    case TAG.ARRAY:
      return writeArray(w, type, text);
    case TAG.COMPOSITE:
      return writeComposite(w, type, text);
    case TAG.ENUM:
      return w.str(text);
    case TAG.OTHER:
      return w.str(type.name).str(sendBytes(type, text));
    default:
      throw new Error(`unreachable tag ${tag}`);
  }
}

/** Encode one value on its own (tag || payload). */
export function encodeValue(type, text) {
  return writeValue(new ByteWriter(), type, text).toBuffer();
}

// --- numeric ---------------------------------------------------------------

function checkNumericText(text) {
  // numeric_out: optional '-', digits, optional '.digits'; or NaN/±Infinity.
  if (!/^(-?\d+(\.\d+)?|NaN|-?Infinity)$/.test(text)) throw new Error(`bad numeric ${JSON.stringify(text)}`);
}

// --- floats ----------------------------------------------------------------

const CANONICAL_NAN = Buffer.from('7ff8000000000000', 'hex');

/** IEEE binary64 bits (u64, big-endian) of a float4/float8 text form. */
export function floatBits(text, isFloat4) {
  let v;
  if (text === 'NaN') return Buffer.from(CANONICAL_NAN);
  if (text === 'Infinity') v = Infinity;
  else if (text === '-Infinity') v = -Infinity;
  else {
    if (!/^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(text)) throw new Error(`bad float ${JSON.stringify(text)}`);
    v = isFloat4 ? decimalToFloat32(text) : Number(text);
  }
  const b = Buffer.alloc(8);
  b.writeDoubleBE(v);
  return b;
}

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

/**
 * Correctly rounded (ties-to-even) conversion of a decimal string to the
 * nearest IEEE binary32 value, returned as a JS number.  Done with exact
 * integer arithmetic to avoid double rounding through binary64.
 */
export function decimalToFloat32(text) {
  const m = /^(-?)(\d*)\.?(\d*)(?:e([-+]?\d+))?$/i.exec(text);
  const negative = m[1] === '-';
  const digits = (m[2] + m[3]).replace(/^0+/, '');
  let exp10 = (m[4] ? parseInt(m[4], 10) : 0) - m[3].length;
  if (digits === '') return negative ? -0 : 0;
  let num = BigInt(digits);
  let den = 1n;
  if (exp10 >= 0) num *= 10n ** BigInt(exp10);
  else den = 10n ** BigInt(-exp10);
  // e = floor(log2(num/den))
  let e = bitLength(num) - bitLength(den);
  if ((e >= 0 ? num : num << BigInt(-e)) < (e >= 0 ? den << BigInt(e) : den)) e -= 1;
  if (e < -126) e = -126; // subnormal range: fixed exponent
  // q = round(num/den * 2^(23-e)), 24-bit significand
  const shift = 23 - e;
  let N = num;
  let D = den;
  if (shift >= 0) N <<= BigInt(shift);
  else D <<= BigInt(-shift);
  let q = N / D;
  const r2 = (N - q * D) * 2n;
  if (r2 > D || (r2 === D && (q & 1n) === 1n)) q += 1n;
  if (q === 1n << 24n) {
    q >>= 1n;
    e += 1;
  }
  if (e > 127) return negative ? -Infinity : Infinity;
  const v = Number(q) * 2 ** (e - 23);
  return negative ? -v : v;
}

// --- text-like -------------------------------------------------------------

/** "char" prints bytes >= 128 as \ooo; turn that back into the stored byte. */
function charBytes(text) {
  const m = /^\\([0-3][0-7]{2})$/.exec(text);
  return m ? Buffer.from([parseInt(m[1], 8)]) : utf8(text);
}

export function parseByteaHex(text) {
  if (!/^\\x([0-9a-fA-F]{2})*$/.test(text)) throw new Error(`bytea not in hex format: ${JSON.stringify(text.slice(0, 40))}`);
  return Buffer.from(text.slice(2), 'hex');
}

export function parseUuid(text) {
  const hex = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`bad uuid ${JSON.stringify(text)}`);
  return Buffer.from(hex, 'hex');
}

// --- date/time -------------------------------------------------------------

const USECS_PER_DAY = 86400000000n;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** Days from 1970-01-01 to the proleptic Gregorian date (astronomical year). */
export function daysFromCivil(y, m, d) {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Year text plus optional " BC" to an astronomical year (1 BC = year 0). */
function astronomicalYear(yearText, bc) {
  const y = parseInt(yearText, 10);
  return bc ? 1 - y : y;
}

/** "HH:MM:SS[.ffffff]" to microseconds (BigInt). */
function timeOfDayMicros(h, mi, s, frac) {
  const f = (frac ?? '').slice(1);
  if (f.length > 6) throw new Error(`more than 6 fractional digits: .${f}`);
  return (
    (BigInt(h) * 3600n + BigInt(mi) * 60n + BigInt(s)) * 1000000n + BigInt(f.padEnd(6, '0') || '0')
  );
}

/** "+HH[:MM[:SS]]" to seconds east of UTC. */
function offsetSeconds(text) {
  const m = /^([+-])(\d{2})(?::(\d{2}))?(?::(\d{2}))?$/.exec(text);
  if (!m) throw new Error(`bad UTC offset ${JSON.stringify(text)}`);
  const s = parseInt(m[2], 10) * 3600 + parseInt(m[3] ?? '0', 10) * 60 + parseInt(m[4] ?? '0', 10);
  return m[1] === '-' ? -s : s;
}

/** timestamp[tz] ISO text to i64 microseconds since 1970-01-01 (UTC for tz). */
export function parseTimestamp(text, withZone) {
  if (text === 'infinity') return I64_MAX;
  if (text === '-infinity') return I64_MIN;
  const m = /^(\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d+)?([+-][\d:]+)?( BC)?$/.exec(text);
  if (!m || Boolean(m[8]) !== withZone) throw new Error(`bad timestamp${withZone ? 'tz' : ''} ${JSON.stringify(text)}`);
  const days = daysFromCivil(astronomicalYear(m[1], m[9]), parseInt(m[2], 10), parseInt(m[3], 10));
  let micros = BigInt(days) * USECS_PER_DAY + timeOfDayMicros(m[4], m[5], m[6], m[7]);
  if (withZone) micros -= BigInt(offsetSeconds(m[8])) * 1000000n;
  return micros;
}

/** date ISO text to i32 days since 1970-01-01. */
export function parseDate(text) {
  if (text === 'infinity') return 0x7fffffff;
  if (text === '-infinity') return -0x80000000;
  const m = /^(\d{4,})-(\d{2})-(\d{2})( BC)?$/.exec(text);
  if (!m) throw new Error(`bad date ${JSON.stringify(text)}`);
  return daysFromCivil(astronomicalYear(m[1], m[4]), parseInt(m[2], 10), parseInt(m[3], 10));
}

export function parseTime(text) {
  const m = /^(\d{2}):(\d{2}):(\d{2})(\.\d+)?$/.exec(text);
  if (!m) throw new Error(`bad time ${JSON.stringify(text)}`);
  return timeOfDayMicros(m[1], m[2], m[3], m[4]);
}

/** timetz: local time as stored plus the UTC offset, seconds east positive. */
export function parseTimetz(text) {
  const m = /^(\d{2}):(\d{2}):(\d{2})(\.\d+)?([+-][\d:]+)$/.exec(text);
  if (!m) throw new Error(`bad timetz ${JSON.stringify(text)}`);
  return { micros: timeOfDayMicros(m[1], m[2], m[3], m[4]), offset: offsetSeconds(m[5]) };
}

/**
 * interval in IntervalStyle iso_8601 ("P1Y2M3DT4H5M6.5S", each part may be
 * negative, "PT0S" for zero) to its three stored fields.
 */
export function parseIsoInterval(text) {
  const m =
    /^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?)(\d+)(\.\d+)?S)?)?$/.exec(text);
  if (!m || text === 'P' || text.endsWith('T')) throw new Error(`bad iso_8601 interval ${JSON.stringify(text)}`);
  const int = (s) => BigInt(s ?? '0');
  const months = int(m[1]) * 12n + int(m[2]);
  const days = int(m[3]);
  let secMicros = m[7] === undefined ? 0n : timeOfDayMicros(0, 0, m[7], m[8]);
  if (m[6] === '-') secMicros = -secMicros;
  const micros = int(m[4]) * 3600000000n + int(m[5]) * 60000000n + secMicros;
  return { months: Number(months), days: Number(days), micros };
}

// --- jsonb -----------------------------------------------------------------

/**
 * Lossless JSON parser: numbers keep their source text.  Returns nodes
 * {t:'null'} {t:'bool',v} {t:'num',v:text} {t:'str',v} {t:'arr',v:[...]}
 * {t:'obj',v:[[key,node],...]} (source order; duplicates: last wins).
 */
export function parseJson(text) {
  let i = 0;
  const fail = (what) => {
    throw new Error(`bad JSON (${what}) at offset ${i}: ${JSON.stringify(text.slice(i, i + 20))}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const str = () => {
    if (text[i] !== '"') fail('expected string');
    i++;
    let out = '';
    for (;;) {
      const c = text[i++];
      if (c === undefined) fail('unterminated string');
      if (c === '"') return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = text[i++];
      const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e in simple) out += simple[e];
      else if (e === 'u') {
        const hex = text.slice(i, i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape');
        out += String.fromCharCode(parseInt(hex, 16)); // surrogate pairs combine in the JS string
        i += 4;
      } else fail('bad escape');
    }
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const entries = new Map();
      ws();
      if (text[i] === '}') {
        i++;
        return { t: 'obj', v: [] };
      }
      for (;;) {
        ws();
        const k = str();
        ws();
        if (text[i++] !== ':') fail('expected :');
        entries.set(k, value());
        ws();
        const d = text[i++];
        if (d === '}') return { t: 'obj', v: [...entries] };
        if (d !== ',') fail('expected , or }');
      }
    }
    if (c === '[') {
      i++;
      const items = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { t: 'arr', v: items };
      }
      for (;;) {
        items.push(value());
        ws();
        const d = text[i++];
        if (d === ']') return { t: 'arr', v: items };
        if (d !== ',') fail('expected , or ]');
      }
    }
    if (c === '"') return { t: 'str', v: str() };
    for (const [lit, node] of [
      ['null', { t: 'null' }],
      ['true', { t: 'bool', v: true }],
      ['false', { t: 'bool', v: false }],
    ]) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return node;
      }
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/.exec(text.slice(i));
    if (!m) fail('unexpected token');
    i += m[0].length;
    return { t: 'num', v: m[0] };
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing characters');
  return v;
}

/** Append a JSON node as a jsonb value (section 2, JSON values table). */
export function writeJsonValue(w, node) {
  switch (node.t) {
    case 'null':
      return w.u8(0x00);
    case 'bool':
      return w.u8(0x01).u8(node.v ? 1 : 0);
    case 'num':
      // jsonb prints numbers with numeric_out, so this is the numeric text.
      checkNumericText(node.v);
      return w.u8(0x03).str(node.v);
    case 'str':
      return w.u8(0x05).str(node.v);
    case 'arr':
      w.u8(TAG.JSON_ARRAY).u32(node.v.length);
      for (const item of node.v) writeJsonValue(w, item);
      return w;
    case 'obj': {
      const entries = [...node.v].sort((a, b) => compareJsonbKeys(a[0], b[0]));
      w.u8(TAG.JSON_OBJECT).u32(entries.length);
      for (const [k, v] of entries) writeJsonValue(w.str(k), v);
      return w;
    }
    default:
      throw new Error(`bad JSON node ${node.t}`);
  }
}

// --- arrays ----------------------------------------------------------------

/**
 * Parse array_out text ("[lb:ub]...={...}" decoration optional) into
 * { dims: [{length, lower}], elements: [text|null] } in row-major order.
 */
export function parseArrayText(text, delim = ',') {
  let i = 0;
  const fail = (what) => {
    throw new Error(`bad array literal (${what}) at ${i}: ${JSON.stringify(text.slice(0, 60))}`);
  };
  let lowers = null;
  if (text[0] === '[') {
    lowers = [];
    const uppers = [];
    while (text[i] === '[') {
      const m = /^\[(-?\d+):(-?\d+)\]/.exec(text.slice(i));
      if (!m) fail('dimension decoration');
      lowers.push(parseInt(m[1], 10));
      uppers.push(parseInt(m[2], 10));
      i += m[0].length;
    }
    if (text[i++] !== '=') fail('expected =');
    lowers.upper = uppers;
  }
  const isSpace = (c) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';
  const skip = () => {
    while (i < text.length && isSpace(text[i])) i++;
  };
  // returns a nested JS array of element texts
  const level = () => {
    skip();
    if (text[i++] !== '{') fail('expected {');
    const items = [];
    skip();
    if (text[i] === '}') {
      i++;
      return items;
    }
    for (;;) {
      skip();
      if (text[i] === '{') items.push(level());
      else items.push(scalar());
      skip();
      const c = text[i++];
      if (c === '}') return items;
      if (c !== delim) fail(`expected ${delim} or }`);
    }
  };
  const scalar = () => {
    let out = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        const c = text[i++];
        if (c === undefined) fail('unterminated quote');
        if (c === '"') return { text: out };
        if (c === '\\') out += text[i++];
        else out += c;
      }
    }
    let raw = '';
    while (i < text.length && text[i] !== delim && text[i] !== '}') {
      if (text[i] === '\\') {
        raw += text[i + 1];
        i += 2;
      } else raw += text[i++];
    }
    out = raw.replace(/[ \t\n\r\v\f]+$/, '');
    if (out.toUpperCase() === 'NULL') return { text: null };
    return { text: out };
  };
  const tree = level();
  skip();
  if (i !== text.length) fail('trailing characters');

  // derive dimensions from the (rectangular) nesting
  const dims = [];
  for (let node = tree; Array.isArray(node); node = node[0]) {
    if (node.length === 0) break;
    dims.push(node.length);
  }
  if (tree.length === 0) {
    if (lowers && lowers.length) fail('decoration on an empty array');
    return { dims: [], elements: [] };
  }
  const elements = [];
  const walk = (node, depth) => {
    if (!Array.isArray(node)) {
      if (depth !== dims.length) fail('ragged array');
      elements.push(node.text);
      return;
    }
    if (depth >= dims.length || node.length !== dims[depth]) fail('ragged array');
    for (const child of node) walk(child, depth + 1);
  };
  walk(tree, 0);
  if (lowers) {
    if (lowers.length !== dims.length) fail('decoration does not match nesting');
    lowers.forEach((lb, d) => {
      if (lowers.upper[d] - lb + 1 !== dims[d]) fail('decoration does not match length');
    });
  }
  return {
    dims: dims.map((length, d) => ({ length, lower: lowers ? lowers[d] : 1 })),
    elements,
  };
}

function writeArray(w, type, text) {
  let parsed;
  if (type.vector) {
    // int2vector / oidvector print as space-separated elements, lower bound 0
    const parts = text.trim() === '' ? [] : text.trim().split(/\s+/);
    parsed = { dims: parts.length ? [{ length: parts.length, lower: 0 }] : [], elements: parts };
  } else {
    parsed = parseArrayText(text, type.delim ?? ',');
  }
  w.u32(parsed.dims.length);
  for (const d of parsed.dims) w.u32(d.length).i32(d.lower);
  for (const el of parsed.elements) writeValue(w, type.elem, el);
  return w;
}

// --- composites ------------------------------------------------------------

/** Parse record_out text "(a,,"b c")" into field texts (null = NULL). */
export function parseRecordText(text) {
  if (text[0] !== '(' || text[text.length - 1] !== ')') throw new Error(`bad record literal ${JSON.stringify(text)}`);
  const fields = [];
  let i = 1;
  for (;;) {
    // an empty, unquoted field is NULL
    if (text[i] === ',' || text[i] === ')') {
      fields.push(null);
    } else {
      let out = '';
      let quoted = false;
      while (quoted || (text[i] !== ',' && text[i] !== ')')) {
        const c = text[i++];
        if (c === undefined) throw new Error(`unterminated record literal ${JSON.stringify(text)}`);
        if (c === '\\') out += text[i++];
        else if (c === '"') {
          if (quoted && text[i] === '"') {
            out += '"';
            i++;
          } else quoted = !quoted;
        } else out += c;
      }
      fields.push(out);
    }
    const c = text[i++];
    if (c === ')') break;
  }
  if (i !== text.length) throw new Error(`trailing characters in record literal ${JSON.stringify(text)}`);
  return fields;
}

function writeComposite(w, type, text) {
  // "()" is both a zero-attribute row and a one-attribute row holding NULL
  const fields = type.attrs.length === 0 && text === '()' ? [] : parseRecordText(text);
  if (fields.length !== type.attrs.length) {
    throw new Error(`composite ${describe(type)}: ${fields.length} fields, ${type.attrs.length} attributes`);
  }
  w.u32(type.attrs.length);
  type.attrs.forEach((a, k) => writeValue(w.str(a.name), a.type, fields[k]));
  return w;
}

// --- other base types (tag 0x7F): their binary send output ------------------

/** Bytes of the type's binary send function, for the types we know. */
export function sendBytes(type, text) {
  switch (type.name) {
    case 'citext': // citextsend = textsend: the UTF-8 text
      return utf8(text);
    case 'inet':
      return inetSend(text, false);
    case 'cidr':
      return inetSend(text, true);
    case 'macaddr':
    case 'macaddr8': {
      const hex = text.replace(/[:.-]/g, '');
      const n = type.name === 'macaddr' ? 12 : 16;
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) throw new Error(`bad ${type.name} ${JSON.stringify(text)}`);
      return Buffer.from(hex, 'hex');
    }
    case 'point': {
      // point_send: x and y as float8 (text form "(x,y)")
      const m = /^\(([^,]+),([^)]+)\)$/.exec(text);
      if (!m) throw new Error(`bad point ${JSON.stringify(text)}`);
      return Buffer.concat([floatBits(m[1], false), floatBits(m[2], false)]);
    }
    case 'oid': {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(Number(text));
      return b;
    }
    default:
      throw new UnsupportedType(`type ${describe(type)} (tag 0x7F) unsupported in verifier`);
  }
}

/** inet_send / cidr_send: family, bits, is_cidr, address size, address. */
export function inetSend(text, isCidr) {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const v6 = addrText.includes(':');
  const addr = v6 ? parseIPv6(addrText) : parseIPv4(addrText);
  const bits = slash < 0 ? addr.length * 8 : parseInt(text.slice(slash + 1), 10);
  // PGSQL_AF_INET = AF_INET (2), PGSQL_AF_INET6 = AF_INET + 1 (3)
  return Buffer.concat([Buffer.from([v6 ? 3 : 2, bits, isCidr ? 1 : 0, addr.length]), addr]);
}

function parseIPv4(text) {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && +p < 256)) {
    throw new Error(`bad IPv4 address ${JSON.stringify(text)}`);
  }
  return Buffer.from(parts.map(Number));
}

function parseIPv6(text) {
  const groups = (s) => {
    if (s === '') return [];
    const out = [];
    for (const g of s.split(':')) {
      if (g.includes('.')) {
        const v4 = parseIPv4(g);
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`bad IPv6 address ${JSON.stringify(text)}`);
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  let words;
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    const head = groups(text.slice(0, dbl));
    const tail = groups(text.slice(dbl + 2));
    words = [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  } else words = groups(text);
  if (words.length !== 8) throw new Error(`bad IPv6 address ${JSON.stringify(text)}`);
  const b = Buffer.alloc(16);
  words.forEach((x, k) => b.writeUInt16BE(x, 2 * k));
  return b;
}

// ---------------------------------------------------------------------------
// Rows and keys (sections 1 and 5)
// ---------------------------------------------------------------------------

/** Sort [{name, type, text}] by UTF-8 name bytes and write n × (str(name) || value), omitting NULLs. */
function writeFields(w, fields) {
  const present = fields
    .filter((f) => f.text !== null && f.text !== undefined)
    .sort((a, b) => compareNames(a.name, b.name));
  w.u32(present.length);
  for (const f of present) writeValue(w.str(f.name), f.type, f.text);
  return w;
}

/**
 * Row encoding: 0x01 || kind || str(label) || u32 n || fields.
 * kind 'R' with the hashed columns, or 'D' with the key columns.
 */
export function encodeRow(label, kind, fields) {
  if (kind !== 'R' && kind !== 'D') throw new Error(`bad kind ${kind}`);
  const w = new ByteWriter().u8(0x01).u8(kind.charCodeAt(0)).str(label);
  return writeFields(w, fields).toBuffer();
}

/** Record key encoding: u32 n || n × (str(name) || value) over the key columns. */
export function encodeKey(fields) {
  return writeFields(new ByteWriter(), fields).toBuffer();
}

/** The 'D' tombstone is the label plus the key encoding of the deleted row. */
export function encodeDeletionFromKey(label, keyBytes) {
  return new ByteWriter().u8(0x01).u8(0x44).str(label).bytes(keyBytes).toBuffer();
}
