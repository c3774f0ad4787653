import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration, parseSize, UnitError, DURATION_PATTERN, SIZE_PATTERN } from '../../src/config/units.ts';

// Each value must throw a UnitError with a matching reason that names the value.
function assertUnitErrors(parse: (value: string | number) => number, cases: [string | number, RegExp][]): void {
  for (const [value, reason] of cases) {
    assert.throws(() => parse(value), (err: unknown) => {
      assert.ok(err instanceof UnitError, `${JSON.stringify(value)}: ${err}`);
      assert.match(err.reason, reason, `reason for ${JSON.stringify(value)}`);
      assert.ok(err.message.includes(`(got ${JSON.stringify(value)})`), err.message);
      assert.equal(err.value, value);
      return true;
    });
  }
}

test('durations: units, compound terms, fractions, plain numbers', () => {
  assert.equal(parseDuration('200ms'), 200);
  assert.equal(parseDuration('5s'), 5_000);
  assert.equal(parseDuration('1m'), 60_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('1h 1ms'), 3_600_001);
  assert.equal(parseDuration(' 10s '), 10_000);
  assert.equal(parseDuration('1.5s'), 1_500);
  // 1.1 * 1000 is 1100.0000000000002 in binary floating point.
  assert.equal(parseDuration('1.1s'), 1_100);
  assert.equal(parseDuration('0.001s'), 1);
  assert.equal(parseDuration('0s'), 0);
  assert.equal(parseDuration(250), 250);
  assert.equal(parseDuration(0), 0);
});

test('durations: errors name the value and say what is wrong', () => {
  const cases: [string | number, RegExp][] = [
    ['5x', /unknown duration unit "x"/],
    ['5', /needs a unit/],
    ['', /empty duration/],
    ['s', /invalid duration/],
    ['-5s', /invalid duration/],
    ['1.5ms', /whole number of milliseconds/],
    ['5 seconds', /unknown duration unit "seconds"/],
    ['5s!', /invalid duration/],
    [-1, /whole number of milliseconds >= 0/],
    [1.5, /whole number of milliseconds >= 0/],
    ['99999999999999999h', /too large/],
  ];
  assertUnitErrors(parseDuration, cases);
});

test('sizes: binary and decimal units, plain bytes, fractions', () => {
  assert.equal(parseSize('4MiB'), 4 * 1024 * 1024);
  assert.equal(parseSize('256KiB'), 256 * 1024);
  assert.equal(parseSize('1GiB'), 1024 ** 3);
  assert.equal(parseSize('2TiB'), 2 * 1024 ** 4);
  assert.equal(parseSize('64Mi'), 64 * 1024 * 1024);
  assert.equal(parseSize('10MB'), 10_000_000);
  assert.equal(parseSize('1kB'), 1000);
  assert.equal(parseSize('1KB'), 1000);
  assert.equal(parseSize('512B'), 512);
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize(' 4 MiB '), 4 * 1024 * 1024);
  assert.equal(parseSize('1.5KiB'), 1536);
  assert.equal(parseSize('0.5MiB'), 512 * 1024);
  assert.equal(parseSize('0.3KB'), 300);
  assert.equal(parseSize(65536), 65536);
  assert.equal(parseSize(0), 0);
});

test('sizes: errors name the value and say what is wrong', () => {
  const cases: [string | number, RegExp][] = [
    ['4XB', /unknown size unit "XB"/],
    ['4mib', /unknown size unit "mib"/],
    ['1.5B', /whole number of bytes/],
    ['0.0001KB', /whole number of bytes/],
    ['', /invalid size/],
    ['MiB', /invalid size/],
    ['-4MiB', /invalid size/],
    ['4MiB4KiB', /invalid size/],
    [-1, /whole number of bytes >= 0/],
    [2.5, /whole number of bytes >= 0/],
    ['99999999999TiB', /too large/],
  ];
  assertUnitErrors(parseSize, cases);
});

test('the schema patterns accept what the parsers accept and refuse unknown units', () => {
  const duration = new RegExp(DURATION_PATTERN);
  for (const ok of ['200ms', '5s', '1m30s', '1.5s', ' 10s ']) assert.ok(duration.test(ok), ok);
  for (const bad of ['5x', '5', '', '-1s', '5 seconds']) assert.ok(!duration.test(bad), bad);
  const size = new RegExp(SIZE_PATTERN);
  for (const ok of ['4MiB', '256KiB', '10MB', '4096', '1.5KiB', '64Mi']) assert.ok(size.test(ok), ok);
  for (const bad of ['4XB', 'MiB', '-1', '4mib', '']) assert.ok(!size.test(bad), bad);
});
