// Measure stage delta@1 against dedup@1 alone on the modified-tree shape of
// issue 10: a sample tree (half its bytes in files under 64 KiB), then 10 %
// of the files changed by 4 KiB, 1 % added, 1 % deleted, and a 200 MiB file
// edited by 4 KiB in its middle. Two destinations start from the same synced
// tree (indexes built); the change is replicated into one with dedup alone
// and into the other with dedup+delta, each through the real DirSource and
// DirSink, chunk queries through the Envelope codec. Printed per run: file
// content bytes in payloads, bytes as on the wire (each frame's payload as an
// independent zstd-3 frame when that is smaller, plus op headers and the
// chunk query and answer envelopes), and CPU seconds (both ends, this process).
// Then stage dict@1: a tree of 3,000 small JSON and log files replicated
// without and with the stream's dictionary (each region its own embedded
// consensus store), printed the same way.
// Run: node scripts/measure-delta.ts [treeMiB]   (about a minute; not part of the tests)

import { cpSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSampleTree, prng } from '../src/cli/sample-tree.ts';
import { DirSink } from '../src/streams/objects/dir-sink.ts';
import { DirSource } from '../src/streams/objects/dir-source.ts';
import { envelopeCodec, objectOpCodec, type ChunkHave, type ChunkQuery } from '../src/wire/messages.ts';
import { zstd } from '../src/encoding/zstd-binding.ts';
import { DEFAULT_MUTATION, mutateTree } from '../netbench/tree-mutation.ts';
import { EmbeddedStore } from '../src/consensus/embedded-store.ts';
import { DictionaryStore } from '../src/encoding/hde/dictionary-store.ts';
import { writeSmallTree } from '../test/helpers/small-text-tree.ts';

const MiB = 1024 * 1024;
const ZSTD_LEVEL = 3;
const treeMiB = Number(process.argv[2] ?? 64);
/** Files of the dict@1 tree. */
const SMALL_FILES = 3000;

interface Run {
  contentBytes: number;
  wireBytes: number;
  controlBytes: number;
  ops: Record<string, number>;
  cpuSeconds: number;
}

function bytesOf(seed: number, n: number): Buffer {
  const rnd = prng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(Math.floor(rnd() * 2 ** 32), i);
  return b;
}

function report(what: string, r: Run): void {
  console.log(
    `${what}: content ${(r.contentBytes / MiB).toFixed(2)} MiB, wire ~${(r.wireBytes / MiB).toFixed(2)} MiB ` +
      `(control ${(r.controlBytes / 1024).toFixed(1)} KiB), CPU ${r.cpuSeconds.toFixed(2)} s, ops ${JSON.stringify(r.ops)}`,
  );
}

function zstdSize(data: Uint8Array): number {
  if (data.length === 0) return 0;
  const cctx = new zstd.CCtx();
  const out = Buffer.allocUnsafe(zstd.compressBound(data.length));
  return Math.min(data.length, cctx.compressUsingDict(out, data, new Uint8Array(0), ZSTD_LEVEL));
}

/** One session src -> dst through the real source and sink; what crossed. */
async function replicate(src: string, dst: string, chunks: { indexDir: string; stageDir: string }, delta: boolean, dict?: { source: DictionaryStore; dest: DictionaryStore }): Promise<Run> {
  const run: Run = { contentBytes: 0, wireBytes: 0, controlBytes: 0, ops: {}, cpuSeconds: 0 };
  const source = new DirSource({ streamId: 's', root: src, watch: false, once: true, dictionaries: dict?.source });
  const sink = new DirSink({ streamId: 's', root: dst, chunks, dictionaries: dict?.dest });
  const cpu0 = process.cpuUsage();
  const state = await sink.recover(new Uint8Array(0), 0);
  const queryChunks = async (query: ChunkQuery): Promise<ChunkHave> => {
    const q = envelopeCodec.encode({ chunkQuery: query });
    const have = await sink.chunkHave!(envelopeCodec.decode(q).chunkQuery!);
    const h = envelopeCodec.encode({ chunkHave: have });
    run.controlBytes += q.length + h.length;
    return envelopeCodec.decode(h).chunkHave!;
  };
  let seq = 0;
  for await (const record of source.records({ seq: 0, state, queryChunks, deltaBases: delta, dictionary: dict !== undefined }, new AbortController().signal)) {
    await sink.apply(++seq, record.meta, record.data);
    const op = objectOpCodec.decode(record.meta);
    const kind = Object.keys(op).find((k) => op[k as keyof typeof op] !== undefined)!;
    run.ops[kind] = (run.ops[kind] ?? 0) + 1;
    run.contentBytes += record.data.length;
    run.wireBytes += record.meta.length + zstdSize(record.data);
    if (seq % 8 === 0) {
      await sink.flush();
      record.onDurable?.();
    } else record.onDurable?.();
  }
  await sink.flush();
  run.cpuSeconds = (() => {
    const c = process.cpuUsage(cpu0);
    return (c.user + c.system) / 1e6;
  })();
  await source.close();
  await sink.close();
  run.wireBytes += run.controlBytes;
  return run;
}

const base = mkdtempSync(join(tmpdir(), 'dwcp-measure-delta-'));
try {
  const src = join(base, 'src');
  mkdirSync(src);
  const info = await generateSampleTree(src, { totalBytes: treeMiB * MiB, smallShare: 0.5, largeFiles: 2, seed: 7 });
  writeFileSync(join(src, 'huge.bin'), bytesOf(3, 200 * MiB));
  console.log(`tree: ${JSON.stringify(info)} + huge.bin 200 MiB`);

  // Both destinations synced and indexed before the change.
  const dests = ['dedup', 'delta'].map((name) => ({ name, dst: join(base, name), chunks: { indexDir: join(base, `${name}-index`), stageDir: join(base, `${name}-stage`) } }));
  mkdirSync(dests[0].dst);
  await replicate(src, dests[0].dst, dests[0].chunks, true);
  cpSync(dests[0].dst, dests[1].dst, { recursive: true, preserveTimestamps: true });
  await replicate(src, dests[1].dst, dests[1].chunks, true); // builds its index from the tree

  // The change: the modified-tree mutation and 4 KiB in the middle of huge.bin.
  const mutation = await mutateTree(src, { ...DEFAULT_MUTATION, seed: 8 });
  const handle = await open(join(src, 'huge.bin'), 'r+');
  await handle.write(bytesOf(9, 4096), 0, 4096, 100 * MiB + 4321);
  await handle.close();
  utimesSync(join(src, 'huge.bin'), 1_700_000_000, 1_700_000_000);
  console.log(`mutation: ${JSON.stringify(mutation)}, huge.bin: 4 KiB at 100 MiB`);

  for (const d of dests) report(d.name === 'delta' ? 'dedup+delta' : 'dedup alone', await replicate(src, d.dst, d.chunks, d.name === 'delta'));

  // dict@1 on many small JSON/text files: without, then with the stream's dictionary.
  const small = join(base, 'small-src');
  writeSmallTree(small, SMALL_FILES, 1);
  const stores = await Promise.all(['source', 'dest'].map((r) => EmbeddedStore.open(join(base, `${r}-region.db`))));
  try {
    for (const withDict of [false, true]) {
      const dst = join(base, withDict ? 'small-dict' : 'small-plain');
      mkdirSync(dst);
      const dict = withDict ? { source: new DictionaryStore(stores[0], 'fed'), dest: new DictionaryStore(stores[1], 'fed') } : undefined;
      report(`${SMALL_FILES} small JSON/log files, ${withDict ? 'with dict@1' : 'no dictionary'}`, await replicate(small, dst, { indexDir: `${dst}-index`, stageDir: `${dst}-stage` }, false, dict));
    }
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
