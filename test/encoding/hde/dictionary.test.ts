// Stage dict@1's building blocks: a raw-content dictionary from sample files
// makes independent zstd frames of small JSON and text files much smaller,
// frames round-trip, and a frame never decodes past its declared length.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prng } from '../../../src/cli/sample-tree.ts';
import { buildRawDictionary } from '../../../src/encoding/hde/raw-dictionary.ts';
import { DictionaryCodec, dictionaryId } from '../../../src/encoding/hde/dictionary-codec.ts';
import { zstd } from '../../../src/encoding/zstd-binding.ts';

/** Small JSON documents and log snippets with a shared shape, deterministic. */
function smallFiles(n: number, seed: number): Buffer[] {
  const rnd = prng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)];
  const regions = ['eu-west-1', 'us-east-1', 'ap-south-1'];
  return Array.from({ length: n }, (_, i) => {
    if (i % 3 === 2) {
      const lines = Array.from({ length: 5 + Math.floor(rnd() * 20) }, () => `2026-11-${1 + Math.floor(rnd() * 28)} ${pick(['INFO', 'WARN'])} replica ${pick(regions)} ${pick(['checkpoint committed', 'lease renewed', 'carrier reconnect'])} seq=${Math.floor(rnd() * 1e6)}`);
      return Buffer.from(lines.join('\n'));
    }
    const items = Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => ({ id: Math.floor(rnd() * 1e9).toString(16), owner: pick(['alice', 'bob', 'carol']), region: pick(regions), tags: { tier: pick(['gold', 'silver']), replicated: rnd() > 0.5 }, sizeBytes: Math.floor(rnd() * 1e7) }));
    return Buffer.from(JSON.stringify({ apiVersion: 'dwcp.io/v1', kind: 'ObjectList', items }, null, 2));
  });
}

function independentBytes(files: Buffer[]): number {
  const cctx = new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.compressionLevel, 3);
  let total = 0;
  for (const f of files) {
    const out = Buffer.allocUnsafe(zstd.compressBound(f.length) + 64);
    cctx.reset(zstd.ResetDirective.sessionOnly);
    const [, wrote] = cctx.compressStream2(out, f, zstd.EndDirective.end);
    total += wrote;
  }
  return total;
}

test('a dictionary from a 10 % sample compresses small JSON/text files at least 1.3x better than none', () => {
  const files = smallFiles(600, 3);
  const dictionary = buildRawDictionary(files.filter((_, i) => i % 10 === 0));
  const rest = files.filter((_, i) => i % 10 !== 0);
  const codec = new DictionaryCodec(dictionary);
  let withDict = 0;
  for (const f of rest) {
    const frame = codec.compress(f, 3);
    withDict += frame.length;
    assert.ok(codec.decompress(frame, f.length).equals(f));
  }
  const without = independentBytes(rest);
  assert.ok(without / withDict >= 1.3, `without ${without} B, with ${withDict} B`);
});

test('the dictionary is bounded, deduplicated and named by its content', () => {
  const files = smallFiles(200, 4);
  const d = buildRawDictionary([...files, ...files], 4096);
  assert.ok(d.length <= 4096 && d.length > 2048);
  assert.equal(buildRawDictionary([files[0], files[0]], 4096).length, Math.min(files[0].length, 512));
  assert.equal(dictionaryId(d), dictionaryId(Buffer.from(d)));
  assert.notEqual(dictionaryId(d), dictionaryId(buildRawDictionary(files.slice(1), 4096)));
  assert.throws(() => buildRawDictionary(files, 10), /dictBytes must be an integer >= 256, got 10/);
});

test('a frame never decodes past its declared length, and a wrong dictionary never yields the plaintext', () => {
  const files = smallFiles(100, 5);
  const codec = new DictionaryCodec(buildRawDictionary(files.slice(0, 10)));
  const f = files[50];
  const frame = codec.compress(f, 3);
  assert.throws(() => codec.decompress(frame, f.length - 1), /zstd frame with dictionary [0-9a-f]{16}/);
  assert.throws(() => codec.decompress(frame, f.length + 10), /bytes, declared/);
  const other = new DictionaryCodec(buildRawDictionary(smallFiles(30, 99).slice(10)));
  let decoded: Buffer | null = null;
  try {
    decoded = other.decompress(frame, f.length);
  } catch {
    decoded = null;
  }
  assert.ok(decoded === null || !decoded.equals(f));
});
