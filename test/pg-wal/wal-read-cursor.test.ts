// The walsender endpoint's spool cursor on synthetic WAL (1 MiB segments):
// it keeps the segment it reads open between reads, and still serves the
// right bytes when the writer completes the segment (rename of .partial),
// moves on to the next one, or replaces the file it holds.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WalSpoolReader, WalSpoolWriter, type SpoolState, type WalReadCursor } from '../../src/streams/pg-wal/wal-spool.ts';

const MiB = 1024 * 1024;
const SYSTEM = { systemId: '7311111111111111111', timeline: 1, walSegmentSize: MiB, serverVersion: 150013 };
const HEADROOM = 30;

/** A fresh spool of SYSTEM with a writer and a reader's cursor on it, removed after fn. */
async function withSpool(fn: (dir: string, writer: WalSpoolWriter, cursor: WalReadCursor) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dwcp-cursor-'));
  const cursor = new WalSpoolReader(dir).cursor();
  const writer = new WalSpoolWriter(dir);
  writer.setSystem(SYSTEM);
  try {
    await fn(dir, writer, cursor);
  } finally {
    await writer.close();
    await cursor.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a cursor reads on across a segment completed under it and into the next, leaving headroom before the WAL', () => withSpool(async (dir, writer, cursor) => {
  const start = 3 * MiB;
  const wal = randomBytes(MiB + 200 * 1024);
  // The first 600 KiB: segment 3 is still .partial.
  await writer.write(1, start, wal.subarray(0, 600 * 1024));
  const state: SpoolState = (await writer.flush())!;
  const first = await cursor.read(state, 1, start, state.flushLsn, 128 * 1024, HEADROOM);
  assert.equal(first.length, HEADROOM + 128 * 1024);
  assert.ok(first.subarray(HEADROOM).equals(wal.subarray(0, 128 * 1024)));
  // The rest: segment 3 completes (renamed while the cursor holds it open), segment 4 begins.
  await writer.write(1, start + 600 * 1024, wal.subarray(600 * 1024));
  const later: SpoolState = (await writer.flush())!;
  const second = await cursor.read(later, 1, start + 128 * 1024, later.flushLsn, 2 * MiB, HEADROOM);
  // Never past the segment's end.
  assert.equal(second.length, HEADROOM + MiB - 128 * 1024);
  assert.ok(second.subarray(HEADROOM).equals(wal.subarray(128 * 1024, MiB)));
  const third = await cursor.read(later, 1, start + MiB, later.flushLsn, 2 * MiB, HEADROOM);
  assert.ok(third.subarray(HEADROOM).equals(wal.subarray(MiB)));
}));

test('a kept segment that was replaced by a longer file is opened again, not read short', () => withSpool(async (dir, _writer, cursor) => {
  const name = join(dir, '000000010000000000000003.partial');
  const wal = randomBytes(256 * 1024);
  writeFileSync(name, wal.subarray(0, 64 * 1024));
  const state: SpoolState = { ...SYSTEM, startLsn: 3 * MiB, flushLsn: 3 * MiB + 64 * 1024 };
  assert.ok((await cursor.read(state, 1, 3 * MiB, state.flushLsn, MiB)).equals(wal.subarray(0, 64 * 1024)));
  // The file the cursor holds is replaced (written anew beside it, renamed over it) with more WAL.
  writeFileSync(name + '.new', wal);
  renameSync(name + '.new', name);
  const more: SpoolState = { ...state, flushLsn: 3 * MiB + wal.length };
  assert.ok((await cursor.read(more, 1, 3 * MiB + 64 * 1024, more.flushLsn, MiB)).equals(wal.subarray(64 * 1024)));
}));

test('readPieces reads consecutive pieces in one call, each after headroom, and refuses to leave the segment or pass the end', () => withSpool(async (dir, writer, cursor) => {
  const start = 3 * MiB;
  const wal = randomBytes(MiB + 100 * 1024);
  await writer.write(1, start, wal);
  const state: SpoolState = (await writer.flush())!;
  const lengths = [128 * 1024, 128 * 1024, 5_000];
  const pieces = await cursor.readPieces(state, 1, start + 1000, state.flushLsn, lengths, HEADROOM);
  let at = 1000;
  for (const [i, piece] of pieces.entries()) {
    assert.equal(piece.length, HEADROOM + lengths[i]);
    assert.ok(piece.subarray(HEADROOM).equals(wal.subarray(at, at + lengths[i])), `piece ${i}`);
    at += lengths[i];
  }
  // Across the segment's end, or past the end asked for: refused, nothing read.
  await assert.rejects(cursor.readPieces(state, 1, start + MiB - 100, state.flushLsn, [200], HEADROOM), /passes/);
  await assert.rejects(cursor.readPieces(state, 1, start, start + 100, [200]), /passes/);
}));
