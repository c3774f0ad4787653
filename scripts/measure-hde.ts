// Measure HDE's building blocks once, side by side with their baselines:
// FastCDC (cdc@1) and SHA-256 speed per core on 256 MiB of random bytes, and
// the ratio of independent zstd-3 frames of small JSON/log files without a
// dictionary, with a raw-content dictionary (dict@1) and with `zstd --train`
// (ZDICT; skipped when the zstd CLI is missing).
// Run: node scripts/measure-hde.ts   (a few seconds; not part of the tests)

import { randomFillSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkHash, cutPoints } from '../src/encoding/hde/fastcdc.ts';
import { buildRawDictionary } from '../src/encoding/hde/raw-dictionary.ts';
import { DictionaryCodec } from '../src/encoding/hde/dictionary-codec.ts';
import { zstd } from '../src/encoding/zstd-binding.ts';
import { prng } from '../src/cli/sample-tree.ts';

const MiB = 1024 * 1024;

/** CPU seconds (user + system) of fn. */
function cpuSeconds(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

// ---- chunking and naming ----
const data = Buffer.allocUnsafe(256 * MiB);
for (let o = 0; o < data.length; o += 64 * 1024) randomFillSync(data, o, 64 * 1024);
cutPoints(data.subarray(0, 32 * MiB));
let cuts: number[] = [];
for (let run = 0; run < 3; run++) {
  const s = cpuSeconds(() => {
    cuts = cutPoints(data);
  });
  console.log(`fastcdc cdc@1: ${(data.length / s / 1e6).toFixed(0)} MB per CPU second, ${cuts.length} chunks, mean ${(data.length / cuts.length / 1024).toFixed(1)} KiB`);
}
for (let run = 0; run < 3; run++) {
  const s = cpuSeconds(() => {
    let at = 0;
    for (const cut of cuts) {
      chunkHash(data.subarray(at, cut));
      at = cut;
    }
  });
  console.log(`sha-256 of the chunks: ${(data.length / s / 1e6).toFixed(0)} MB per CPU second`);
}

// ---- dictionaries for small files ----
const rnd = prng(11);
const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)];
const regions = ['eu-west-1', 'us-east-1', 'ap-south-1', 'sa-east-1'];
const files: Buffer[] = [];
for (let i = 0; i < 3000; i++) {
  if (i % 3 === 2) {
    const lines = Array.from({ length: 5 + Math.floor(rnd() * 40) }, () => `2026-11-${1 + Math.floor(rnd() * 28)}T${Math.floor(rnd() * 24)}:00Z ${pick(['INFO', 'WARN', 'ERROR'])} replica ${pick(regions)} stream ${Math.floor(rnd() * 100)} ${pick(['checkpoint committed', 'carrier reconnect', 'lease renewed'])} seq=${Math.floor(rnd() * 1e6)}`);
    files.push(Buffer.from(lines.join('\n') + '\n'));
  } else {
    const items = Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => ({ id: Math.floor(rnd() * 1e9).toString(16), owner: pick(['alice', 'bob', 'carol', 'dave']), region: pick(regions), createdAt: new Date(1.7e12 + rnd() * 1e10).toISOString(), tags: { tier: pick(['gold', 'silver', 'bronze']), replicated: rnd() > 0.5 }, sizeBytes: Math.floor(rnd() * 1e7) }));
    files.push(Buffer.from(JSON.stringify({ apiVersion: 'dwcp.io/v1', kind: 'ObjectList', items }, null, 2)));
  }
}
const sample = files.filter((_, i) => i % 10 === 0);
const rest = files.filter((_, i) => i % 10 !== 0);
const restBytes = rest.reduce((n, f) => n + f.length, 0);
const cctx = new zstd.CCtx();
let plain = 0;
for (const f of rest) {
  const out = Buffer.allocUnsafe(zstd.compressBound(f.length) + 64);
  cctx.reset(zstd.ResetDirective.sessionAndParameters);
  cctx.setParameter(zstd.CParameter.compressionLevel, 3);
  plain += cctx.compressStream2(out, f, zstd.EndDirective.end)[1];
}
const withDictionary = (dict: Uint8Array): number => {
  const codec = new DictionaryCodec(dict);
  return rest.reduce((n, f) => n + codec.compress(f, 3).length, 0);
};
console.log(`${rest.length} small files (${restBytes} B), zstd-3 per file; dictionaries from the other ${sample.length}:`);
console.log(`  no dictionary: ${(restBytes / plain).toFixed(2)}x`);
const raw = buildRawDictionary(sample);
console.log(`  raw-content dictionary (${raw.length} B): ${(restBytes / withDictionary(raw)).toFixed(2)}x`);
const dir = mkdtempSync(join(tmpdir(), 'dwcp-dict-'));
try {
  sample.forEach((f, i) => writeFileSync(join(dir, `s${i}`), f));
  execFileSync('zstd', ['-q', '-f', '--train', ...sample.map((_, i) => join(dir, `s${i}`)), '-o', join(dir, 'dict'), `--maxdict=${raw.length}`], { stdio: 'ignore' });
  const trained = readFileSync(join(dir, 'dict'));
  console.log(`  zstd --train (${trained.length} B): ${(restBytes / withDictionary(trained)).toFixed(2)}x`);
} catch (err) {
  console.log(`  zstd --train: skipped (${(err as Error).message.split('\n')[0]})`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
