// Streaming zstd context vs independent frames on real WAL: a PostgreSQL 15
// primary (the postgres-lab harness) runs pgbench twice after a checkpoint
// (first run: page images dominate; second run: steady state); the WAL both
// wrote is read from pg_wal, cut into 64 KiB frames and encoded at level 3
// both ways through the HDE pool. The ratios are printed (they
// depend on the workload), not asserted; asserted: streaming is not worse,
// and every streaming frame decodes back to its WAL bytes in order.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startPostgres } from '../helpers/postgres.ts';
import { parseLsn } from '../../src/streams/pg-wal/lsn.ts';
import { HdePool } from '../../src/encoding/hde-pool.ts';
import { zstd } from '../../src/encoding/zstd-binding.ts';

const FRAME_BYTES = 64 * 1024;
const LEVEL = 3;
const SEGMENT_BYTES = 16 * 1024 * 1024;
/** pgbench workload: small enough for seconds; each run touches most pages of the scale-2 tables. */
const PGBENCH_SCALE = '2';
const PGBENCH_ARGS = ['-c', '2', '-t', '4000'];

/** The WAL written between two LSNs, read from the segment files in pg_wal (timeline 1). */
function readWal(pgWal: string, startLsn: number, endLsn: number): Buffer {
  const parts: Buffer[] = [];
  for (let seg = Math.floor(startLsn / SEGMENT_BYTES); seg * SEGMENT_BYTES < endLsn; seg++) {
    const name = '00000001' + Math.floor(seg / 256).toString(16).toUpperCase().padStart(8, '0') + (seg % 256).toString(16).toUpperCase().padStart(8, '0');
    const bytes = readFileSync(join(pgWal, name));
    const from = Math.max(startLsn - seg * SEGMENT_BYTES, 0);
    const to = Math.min(endLsn - seg * SEGMENT_BYTES, SEGMENT_BYTES);
    parts.push(bytes.subarray(from, to));
  }
  return Buffer.concat(parts);
}

/** One-shot zstd of a whole buffer (the best a single frame does), bytes. */
function wholeCompressed(data: Buffer): number {
  const cctx = new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.compressionLevel, LEVEL);
  const out = Buffer.allocUnsafe(zstd.compressBound(data.length));
  let produced = 0;
  let consumed = 0;
  for (;;) {
    const [remaining, wrote, read] = cctx.compressStream2(out.subarray(produced), data.subarray(consumed), zstd.EndDirective.end);
    produced += wrote;
    consumed += read;
    if (remaining === 0) return produced;
  }
}

test('streaming context vs independent 64 KiB frames on pgbench WAL (zstd level 3)', { timeout: 180_000 }, async (t) => {
  // WAL: two pgbench runs after a checkpoint, their LSN boundaries recorded
  // (the phase boundary rounded to a frame, as the phases are reported per frame).
  const pg = await startPostgres();
  let wal: Buffer;
  let steadyFrom: number;
  try {
    const lsn = async (): Promise<number> => parseLsn((await pg.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn'))[0].lsn);
    await pg.pgbench(['-i', '-s', PGBENCH_SCALE, '-q']);
    await pg.query('CHECKPOINT');
    const start = await lsn();
    await pg.pgbench([...PGBENCH_ARGS, '--random-seed=42']);
    const middle = await lsn();
    await pg.pgbench([...PGBENCH_ARGS, '--random-seed=43']);
    const end = await lsn();
    wal = readWal(join(pg.dataDir, 'pg_wal'), start, end);
    steadyFrom = Math.round((middle - start) / FRAME_BYTES);
  } finally {
    await pg.stop();
  }
  assert.ok(wal.length > SEGMENT_BYTES, `pgbench wrote only ${wal.length} bytes of WAL (want more than a segment)`);

  const frames: Buffer[] = [];
  for (let at = 0; at < wal.length; at += FRAME_BYTES) frames.push(wal.subarray(at, at + FRAME_BYTES));
  const pool = new HdePool(2);
  try {
    // Both ways through the pool; copies go in (the pool may move buffers to workers).
    const meta = Buffer.alloc(0);
    const independent = await Promise.all(frames.map((f) => pool.encode(meta, Buffer.from(f), LEVEL)));
    const streaming = await Promise.all(frames.map((f, i) => pool.encodeStream('send/wal', meta, Buffer.from(f), LEVEL, i === 0)));
    pool.release('send/wal');

    // Every streaming frame decodes back, in order, on a fresh context.
    const decoded = await Promise.all(streaming.map((e, i) => pool.decodeStream('recv/wal', meta, Buffer.from(e.payload), frames[i].length, e.resync)));
    decoded.forEach((d, i) => assert.ok(d.data.equals(frames[i]), `streaming frame ${i} did not decode to its WAL bytes`));
    pool.release('recv/wal');

    // Ratios per phase (one stream across both, as the sender sees it) and overall.
    const ratio = (raw: number, wire: number): string => (raw / wire).toFixed(2) + 'x';
    const sum = (xs: Array<{ length: number }>): number => xs.reduce((n, x) => n + x.length, 0);
    const phases = [
      { name: 'after checkpoint (first pgbench run)', from: 0, to: steadyFrom },
      { name: 'steady (second pgbench run)', from: steadyFrom, to: frames.length },
      { name: 'overall', from: 0, to: frames.length },
    ];
    t.diagnostic(`pgbench -s ${PGBENCH_SCALE}, 2 runs of ${PGBENCH_ARGS.join(' ')} after CHECKPOINT: ${(wal.length / 2 ** 20).toFixed(1)} MiB of WAL in ${frames.length} frames of 64 KiB, zstd level ${LEVEL}`);
    for (const { name, from, to } of phases) {
      const raw = sum(frames.slice(from, to));
      const ind = sum(independent.slice(from, to).map((e) => e.payload));
      const str = sum(streaming.slice(from, to).map((e) => e.payload));
      const whole = wholeCompressed(wal.subarray(from * FRAME_BYTES, from * FRAME_BYTES + raw));
      t.diagnostic(`${name}: ${(raw / 2 ** 20).toFixed(1)} MiB WAL; independent frames ${ratio(raw, ind)}, streaming context ${ratio(raw, str)} (${(100 * (1 - str / ind)).toFixed(1)} % fewer bytes), one zstd frame of it all ${ratio(raw, whole)}`);
    }
    const indTotal = sum(independent.map((e) => e.payload));
    const strTotal = sum(streaming.map((e) => e.payload));

    assert.ok(strTotal <= indTotal, `streaming context (${strTotal} bytes) is worse than independent frames (${indTotal} bytes)`);
  } finally {
    await pool.close();
  }
});
