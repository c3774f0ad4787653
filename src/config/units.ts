// Durations and sizes as people write them ('5s', '200ms', '4MiB') turned
// into the numbers the code needs (milliseconds, bytes). A plain number is
// already in the target unit. Errors name the value that was wrong.

/** Milliseconds per duration unit. */
const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** Bytes per size unit: binary (KiB, Ki) and decimal (KB, kB). */
const SIZE_UNITS_BYTES: Readonly<Record<string, number>> = {
  B: 1,
  KiB: 1024, Ki: 1024,
  MiB: 1024 ** 2, Mi: 1024 ** 2,
  GiB: 1024 ** 3, Gi: 1024 ** 3,
  TiB: 1024 ** 4, Ti: 1024 ** 4,
  kB: 1000, KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  TB: 1000 ** 4,
};

/** One number-with-unit term, e.g. `1.5s`; durations may chain terms (`1m30s`). */
const TERM = /(\d+(?:\.\d+)?)\s*([A-Za-z]*)/y;

/** JSON Schema pattern a duration string must match (one or more terms). */
export const DURATION_PATTERN = '^\\s*(\\d+(\\.\\d+)?\\s*(ms|s|m|h)\\s*)+$';

/** JSON Schema pattern a size string must match (a number, optional unit). */
export const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(B|KiB|Ki|MiB|Mi|GiB|Gi|TiB|Ti|kB|KB|MB|GB|TB)?\\s*$';

/** A value that is not a valid duration or size; `reason` says why, without the value. */
export class UnitError extends Error {
  override name = 'UnitError';
  readonly reason: string;
  readonly value: unknown;
  constructor(reason: string, value: unknown) {
    super(`${reason} (got ${JSON.stringify(value)})`);
    this.reason = reason;
    this.value = value;
  }
}

/**
 * Parses a duration ('200ms', '5s', '1m', '1h', '1m30s', or a number of
 * milliseconds) into whole milliseconds; throws a UnitError naming the value.
 */
export function parseDuration(value: string | number): number {
  // Numbers are milliseconds already.
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) throw new UnitError('must be a whole number of milliseconds >= 0', value);
    return value;
  }
  if (typeof value !== 'string') throw new UnitError('must be a duration like "5s" or a number of milliseconds', value);

  // Sum the terms; each needs a known unit.
  const text = value.trim();
  if (text === '') throw new UnitError('empty duration', value);
  let total = 0;
  let at = 0;
  while (at < text.length) {
    TERM.lastIndex = at;
    const match = TERM.exec(text);
    if (!match) throw new UnitError('invalid duration: expected a number with a unit (ms, s, m, h) like "5s"', value);
    const [, amount, unit] = match;
    if (unit === '') throw new UnitError('duration needs a unit (ms, s, m, h) like "5s"', value);
    const scale = DURATION_UNITS_MS[unit];
    if (scale === undefined) throw new UnitError(`unknown duration unit "${unit}" (known: ms, s, m, h)`, value);
    total += exactProduct(amount, scale);
    at = TERM.lastIndex;
    while (text[at] === ' ') at++;
  }

  // Fractions must still land on whole milliseconds.
  if (Number.isNaN(total) || !Number.isInteger(total)) throw new UnitError('duration must be a whole number of milliseconds', value);
  if (!Number.isSafeInteger(total)) throw new UnitError('duration too large', value);
  return total;
}

/**
 * Parses a size ('4MiB', '256KiB', '1.5GiB', '10MB', '512B', '4096', or a
 * number of bytes) into whole bytes; throws a UnitError naming the value.
 */
export function parseSize(value: string | number): number {
  // Numbers are bytes already.
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) throw new UnitError('must be a whole number of bytes >= 0', value);
    return value;
  }
  if (typeof value !== 'string') throw new UnitError('must be a size like "4MiB" or a number of bytes', value);

  // Exactly one term; no unit means bytes.
  const text = value.trim();
  TERM.lastIndex = 0;
  const match = TERM.exec(text);
  if (!match || TERM.lastIndex !== text.length) {
    throw new UnitError('invalid size: expected a number with an optional unit (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB) like "4MiB"', value);
  }
  const [, amount, unit] = match;
  const scale = unit === '' ? 1 : SIZE_UNITS_BYTES[unit];
  if (scale === undefined) {
    throw new UnitError(`unknown size unit "${unit}" (known: B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)`, value);
  }

  // Fractions must still land on whole bytes.
  const bytes = exactProduct(amount, scale);
  if (Number.isNaN(bytes) || !Number.isInteger(bytes)) throw new UnitError('size must be a whole number of bytes', value);
  if (!Number.isSafeInteger(bytes)) throw new UnitError('size too large', value);
  return bytes;
}

/**
 * Multiplies a decimal string by an integer scale without binary rounding
 * ('1.1' * 1000 is 1100, not 1100.0000000000002); NaN when the result is
 * not whole.
 */
function exactProduct(decimal: string, scale: number): number {
  const [whole, fraction = ''] = decimal.split('.');
  const numerator = Number(whole + fraction) * scale;
  const denominator = 10 ** fraction.length;
  return numerator % denominator === 0 ? numerator / denominator : Number.NaN;
}
