// Content-defined chunking (cdc@1): boundaries depend only on the bytes, an
// insert near the start moves only the chunks around it, sizes stay within
// the bounds, and the streaming file reader cuts exactly where the
// whole-buffer chunker does. The golden vectors pin the cdc@1 wire format
// (gear table and cut rule): a change there must become cdc@2.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chunkBuffer,
  compileCdc,
  cutPoints,
  DEFAULT_CDC_PARAMS,
  GEAR,
  nextCut,
  type CdcParams,
} from '../../../src/encoding/hde/fastcdc.ts';
import { fileChunks } from '../../../src/encoding/hde/file-chunks.ts';
import { seededBytes as bytes } from '../../helpers/seeded-bytes.ts';

const MiB = 1024 * 1024;

/** A plain, byte-at-a-time FastCDC (normalized, level 2) to check the unrolled one against. */
function referenceCuts(data: Uint8Array, p: CdcParams): number[] {
  const bits = Math.log2(p.avgBytes);
  const maskS = (~0 << (32 - bits - 2)) | 0;
  const maskL = (~0 << (32 - bits + 2)) | 0;
  const cuts: number[] = [];
  let start = 0;
  while (start < data.length) {
    let cut = Math.min(start + p.maxBytes, data.length);
    if (data.length - start > p.minBytes) {
      let h = 0;
      for (let i = start + p.minBytes; i < cut; i++) {
        h = ((h << 1) + GEAR[data[i]]) | 0;
        if ((h & (i < start + p.avgBytes ? maskS : maskL)) === 0) {
          cut = i + 1;
          break;
        }
      }
    } else {
      cut = data.length;
    }
    cuts.push(cut);
    start = cut;
  }
  return cuts;
}

function sizes(cuts: number[]): number[] {
  return cuts.map((c, i) => c - (i === 0 ? 0 : cuts[i - 1]));
}

test('cdc@1 is pinned: gear table and cut points of a known input', () => {
  assert.equal(GEAR.length, 256);
  const gearHash = createHash('sha256').update(new Uint8Array(GEAR.buffer)).digest('hex').slice(0, 16);
  assert.equal(gearHash, GOLDEN_GEAR_SHA256_PREFIX);
  assert.deepEqual(cutPoints(bytes(MiB, 1)), GOLDEN_CUTS_1MIB);
});

test('boundaries are deterministic and match a plain byte-at-a-time FastCDC', () => {
  const data = bytes(8 * MiB, 2);
  const small: CdcParams = { minBytes: 1024, avgBytes: 4096, maxBytes: 16384 };
  for (const p of [DEFAULT_CDC_PARAMS, small, { minBytes: 64, avgBytes: 256, maxBytes: 256 }]) {
    const cuts = cutPoints(data, p);
    assert.deepEqual(cuts, referenceCuts(data, p));
    assert.deepEqual(cutPoints(Buffer.from(data), p), cuts);
  }
});

test('sizes stay within min and max; the average is near the normal size', () => {
  const data = bytes(16 * MiB, 3);
  const s = sizes(cutPoints(data));
  for (const size of s.slice(0, -1)) {
    assert.ok(size >= DEFAULT_CDC_PARAMS.minBytes && size <= DEFAULT_CDC_PARAMS.maxBytes, `chunk of ${size} bytes`);
  }
  const mean = data.length / s.length;
  assert.ok(mean > 48 * 1024 && mean < 96 * 1024, `mean chunk ${mean} bytes`);
  // Long runs of one byte value never cut by content: max forces the cut.
  assert.deepEqual(sizes(cutPoints(Buffer.alloc(MiB))), [262144, 262144, 262144, 262144]);
});

test('a 1 KiB insert at the start of a 16 MiB buffer changes only the first few chunks', () => {
  const data = bytes(16 * MiB, 4);
  const edited = Buffer.concat([bytes(1024, 5), data]);
  const before = chunkBuffer(data).map((c) => c.hash.toString('hex'));
  const after = chunkBuffer(edited).map((c) => c.hash.toString('hex'));
  const known = new Set(before);
  const fresh = after.filter((h) => !known.has(h));
  assert.ok(before.length > 150, `${before.length} chunks`);
  assert.ok(fresh.length <= 2, `${fresh.length} of ${after.length} chunks differ`);
  // The same holds for an edit in the middle.
  const mid = Buffer.concat([data.subarray(0, 8 * MiB), bytes(1024, 6), data.subarray(8 * MiB)]);
  assert.ok(chunkBuffer(mid).filter((c) => !known.has(c.hash.toString('hex'))).length <= 2);
});

test('nextCut with more data to come waits rather than cut short, and decides at max', () => {
  const cdc = compileCdc();
  const data = bytes(MiB, 7);
  const whole = nextCut(cdc, data, 0, data.length, true);
  assert.equal(nextCut(cdc, data, 0, whole - 1, false), -1);
  assert.equal(nextCut(cdc, data, 0, whole, false), whole);
  assert.equal(nextCut(cdc, Buffer.alloc(MiB), 0, DEFAULT_CDC_PARAMS.maxBytes, false), DEFAULT_CDC_PARAMS.maxBytes);
  assert.equal(nextCut(cdc, data, 0, 100, true), 100);
});

test('the file reader cuts exactly where the whole-buffer chunker does', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-cdc-'));
  try {
    const data = bytes(5 * MiB + 12345, 8);
    const path = join(dir, 'f');
    await writeFile(path, data);
    const expected = chunkBuffer(data);
    // A read size smaller than the clamp (2 x max) and an odd larger one.
    for (const readBytes of [1, 700_001]) {
      const got = [];
      for await (const c of fileChunks(path, DEFAULT_CDC_PARAMS, readBytes)) {
        assert.ok(c.bytes.equals(data.subarray(c.offset, c.offset + c.length)));
        got.push({ offset: c.offset, length: c.length, hash: c.hash });
      }
      assert.deepEqual(got, expected);
    }
    await writeFile(path, '');
    for await (const _ of fileChunks(path)) assert.fail('an empty file has no chunks');
    await assert.rejects(async () => {
      for await (const _ of fileChunks(join(dir, 'missing'))) void _;
    }, /chunk file .*missing: ENOENT/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad parameters are refused naming the field and value', () => {
  assert.throws(() => compileCdc({ minBytes: 1024, avgBytes: 3000, maxBytes: 8192 }), /avgBytes must be a power of two.*3000/);
  assert.throws(() => compileCdc({ minBytes: 8192, avgBytes: 4096, maxBytes: 8192 }), /minBytes .* got 8192/);
  assert.throws(() => compileCdc({ minBytes: 1024, avgBytes: 4096, maxBytes: 2048 }), /maxBytes .* got 2048/);
});

const GOLDEN_GEAR_SHA256_PREFIX = '885450c8c4dc030c';
const GOLDEN_CUTS_1MIB = [91198, 205697, 300184, 388544, 474565, 546258, 621815, 694026, 782276, 846593, 880093, 948656, 1015341, 1048576];
