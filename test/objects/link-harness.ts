// A stand-in for the DWCP link in objects tests, in-process: it pulls records
// from a Source, numbers them, applies them to a Sink in order, flushes every
// few records, keeps the returned sink state as "the checkpoint", and then
// calls onDurable, just as the real link does after the checkpoint commits.
// It is a harness, not a fake of a component: source and sink are real and
// write real files.

import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DirSinkOptions } from '../../src/streams/objects/dir-sink.ts';
import { envelopeCodec, objectOpCodec } from '../../src/wire/messages.ts';
import type { ChunkHave, ChunkQuery, ObjectOp } from '../../src/wire/messages.ts';
import type { LinkEstimate, Sink, Source, SourceRecord } from '../../src/streams/stream.ts';

/** What one pumped session did. */
export interface PumpResult {
  /** Decoded ops in the order applied. */
  ops: ObjectOp[];
  /** Payload bytes applied. */
  bytes: number;
  /** Sink state of the last checkpoint (last flush). */
  checkpoint: Uint8Array;
  /** Last sequence number applied and checkpointed. */
  seq: number;
  /** Most chunk queries the source had open at once. */
  maxOpenQueries: number;
}

/** Options of pump(). */
export interface PumpOptions {
  /** Sequence number of the last checkpoint (the session resumes after it). Default 0. */
  seq?: number;
  /** Sink state of the last checkpoint, passed to recover(). Default empty. */
  checkpoint?: Uint8Array;
  /** Records between flushes. Default 8. */
  flushEvery?: number;
  /** Stop (flush, ack) after this many records. Default: until the source ends. */
  stopAfter?: number;
  /** Ends the session (watch mode). */
  signal?: AbortSignal;
  /**
   * Stage dedup@1 negotiated: the source's chunk queries go to the sink's
   * chunkHave, both ways through the Envelope codec, as over the link. Default false.
   */
  dedup?: boolean;
  /** Stage delta@1 negotiated as well (with dedup): queries ask for delta bases. Default false. */
  delta?: boolean;
  /** Stage dict@1 negotiated: small files may go with the stream's dictionary. Default false. */
  dictionary?: boolean;
  /** Called after every checkpoint with what was applied so far. */
  onCheckpoint?: (result: PumpResult) => void;
  /** The link's measured round trip and rate, as the sender would report them. Default: not measured. */
  link?: LinkEstimate;
}

/** One link session: recover the sink, resume the source from it, pump records through, close both. */
export async function pump(source: Source, sink: Sink, options: PumpOptions = {}): Promise<PumpResult> {
  const signal = options.signal ?? new AbortController().signal;
  const flushEvery = options.flushEvery ?? 8;
  let seq = options.seq ?? 0;
  const result: PumpResult = { ops: [], bytes: 0, checkpoint: options.checkpoint ?? new Uint8Array(0), seq, maxOpenQueries: 0 };
  const state = await sink.recover(result.checkpoint, seq);

  let unacked: SourceRecord[] = [];
  const checkpoint = async () => {
    result.checkpoint = await sink.flush();
    result.seq = seq;
    for (const r of unacked) r.onDurable?.();
    unacked = [];
    options.onCheckpoint?.(result);
  };
  let openQueries = 0;
  const queryChunks = options.dedup
    ? async (query: ChunkQuery): Promise<ChunkHave> => {
        result.maxOpenQueries = Math.max(result.maxOpenQueries, ++openQueries);
        try {
          const asked = envelopeCodec.decode(envelopeCodec.encode({ chunkQuery: query })).chunkQuery!;
          const have = await sink.chunkHave!(asked);
          return envelopeCodec.decode(envelopeCodec.encode({ chunkHave: have })).chunkHave!;
        } finally {
          openQueries--;
        }
      }
    : undefined;
  for await (const record of source.records({ seq, state, queryChunks, deltaBases: options.delta === true, dictionary: options.dictionary === true, link: options.link && (() => options.link!) }, signal)) {
    seq++;
    await sink.apply(seq, record.meta, record.data);
    result.ops.push(objectOpCodec.decode(record.meta));
    result.bytes += record.data.length;
    unacked.push(record);
    if (unacked.length >= flushEvery) await checkpoint();
    if (options.stopAfter !== undefined && result.ops.length >= options.stopAfter) break;
  }
  await checkpoint();
  // The session ends here, as when the link goes down: both ends let go.
  await source.close();
  await sink.close();
  return result;
}

/** First n records of a session, without applying them (data is read as they are pulled). */
export async function takeRecords(source: Source, state: Uint8Array, n: number): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  if (n <= 0) return out;
  for await (const record of source.records({ seq: 0, state }, new AbortController().signal)) {
    out.push(record);
    if (out.length >= n) break;
  }
  return out;
}

/** One entry of a tree as a test sees it, read independently of the code under test. */
export interface TreeFile {
  type: 'file' | 'dir' | 'symlink';
  sha256?: string;
  mode: number;
  mtimeNs: bigint;
}

/** Every entry below root (root excluded, a top-level `.dwcp-tmp` excluded), by relative path. */
export function readTree(root: string): Map<string, TreeFile> {
  const out = new Map<string, TreeFile>();
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    for (const name of readdirSync(join(root, rel))) {
      if (rel === '' && name === '.dwcp-tmp') continue;
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(join(root, childRel), { bigint: true });
      const mode = Number(st.mode) & 0o7777;
      if (st.isSymbolicLink()) {
        out.set(childRel, { type: 'symlink', mode, mtimeNs: st.mtimeNs });
      } else if (st.isDirectory()) {
        out.set(childRel, { type: 'dir', mode, mtimeNs: st.mtimeNs });
        stack.push(childRel);
      } else {
        const sha256 = createHash('sha256').update(readFileSync(join(root, childRel))).digest('hex');
        out.set(childRel, { type: 'file', sha256, mode, mtimeNs: st.mtimeNs });
      }
    }
  }
  return out;
}

/**
 * Differences between two trees (symlinks in the source are not replicated):
 * type, content, mode, and for files the mtime within 1 microsecond. Empty
 * when the destination is a faithful copy.
 */
export function treeDifferences(sourceRoot: string, destRoot: string): string[] {
  const src = readTree(sourceRoot);
  const dst = readTree(destRoot);
  const problems: string[] = [];
  for (const [path, s] of src) {
    if (s.type === 'symlink') continue;
    const d = dst.get(path);
    if (!d) problems.push(`${path}: missing at destination`);
    else if (d.type !== s.type) problems.push(`${path}: ${s.type} at source, ${d.type} at destination`);
    else if (d.sha256 !== s.sha256) problems.push(`${path}: content differs`);
    else if (d.mode !== s.mode) problems.push(`${path}: mode ${s.mode.toString(8)} vs ${d.mode.toString(8)}`);
    else if (s.type === 'file') {
      // The wire carries microseconds; utimes rounds, so allow 1 us either way.
      const diffUs = d.mtimeNs / 1000n - s.mtimeNs / 1000n;
      if (diffUs > 1n || diffUs < -1n) problems.push(`${path}: mtime differs by ${diffUs} us`);
    }
  }
  for (const path of dst.keys()) {
    const s = src.get(path);
    if (!s || s.type === 'symlink') problems.push(`${path}: only at destination`);
  }
  return problems;
}

/** Ops of one kind, as a compact list for assertions. */
export function opsOf(ops: ObjectOp[], kind: keyof ObjectOp): ObjectOp[] {
  return ops.filter((op) => op[kind] !== undefined);
}

/** A source tree, a destination tree and the destination's chunk index and staging directory, in one temp dir. */
export interface ChunkLab {
  src: string;
  dst: string;
  base: string;
  chunks: NonNullable<DirSinkOptions['chunks']>;
}

/** A fresh ChunkLab under a temp dir named for the test file, removed after the test. */
export function chunkLab(t: { after(fn: () => void): void }, name: string): ChunkLab {
  const base = mkdtempSync(join(tmpdir(), `dwcp-${name}-`));
  const lab = { base, src: join(base, 'src'), dst: join(base, 'dst'), chunks: { indexDir: join(base, 'data/chunk-index/s'), stageDir: join(base, 'data/chunk-stage/s') } };
  mkdirSync(lab.src);
  mkdirSync(lab.dst);
  t.after(() => rmSync(base, { recursive: true, force: true }));
  return lab;
}
