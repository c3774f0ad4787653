// The sink never follows a symlink out of its root, whenever it appears: at
// the temp area before recover, in a directory swapped between the frames of
// one file, or in a local writer racing the sink's check and its use; nor
// writes through a hard link planted at a temp file's name. And a crafted
// rename is refused whole, leaving the tree as it was.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { SinkError } from '../../src/streams/stream.ts';
import { objectOpCodec } from '../../src/wire/messages.ts';
import type { FileVersion, ObjectOp } from '../../src/wire/messages.ts';

const MTIME_US = 1_700_000_000_000_000;
/** Files written into a directory that a local writer keeps swapping for a symlink. */
const RACE_FILES = 400;
/** Files of the race between two flushes (each flush publishes them into d). */
const RACE_FILES_PER_FLUSH = 4;

function setup(name: string) {
  const base = mkdtempSync(join(tmpdir(), `dwcp-objects-${name}-`));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, 'victim'), 'keep me');
  mkdirSync(join(outside, 'sub'));
  writeFileSync(join(outside, 'sub', 'deep'), 'keep me too');
  return { base, root, outside };
}

/** Every entry below dir with its content (files) or target (symlinks): what "unchanged" is checked against. */
function snapshot(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const childRel = rel === '' ? name : `${rel}/${name}`;
    const st = lstatSync(join(dir, childRel));
    if (st.isSymbolicLink()) out[childRel] = `-> ${readlinkSync(join(dir, childRel))}`;
    else if (st.isDirectory()) Object.assign(out, { [childRel]: 'dir' }, snapshot(dir, childRel));
    else out[childRel] = readFileSync(join(dir, childRel), 'utf8');
  }
  return out;
}

function version(size: number): FileVersion {
  return { size, mtimeUs: MTIME_US, mode: 0o644 };
}

/** The sink's temp file name for (path, version): a hash anyone can compute, so a local writer can plant it. */
function tempNameOf(path: string, v: FileVersion): string {
  return `${createHash('sha256').update(`${path}\0${v.size}\0${v.mtimeUs}\0${v.mode}`).digest('hex').slice(0, 32)}.part`;
}

async function apply(sink: DirSink, op: ObjectOp, data: Uint8Array = new Uint8Array(0)) {
  return sink.apply(1, objectOpCodec.encode(op), data);
}

function sinkRefusal(rule: RegExp) {
  return (err: unknown) => err instanceof SinkError && rule.test(err.message);
}

test('a symlink or a file at .dwcp-tmp is refused at recover, links inside it are removed, and nothing they point at is touched', async (t) => {
  const { base, root, outside } = setup('temp-link');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const before = snapshot(outside);

  // The whole temp area is a symlink to a directory with files.
  symlinkSync(outside, join(root, '.dwcp-tmp'));
  const sink = new DirSink({ streamId: 's', root });
  await assert.rejects(sink.recover(new Uint8Array(0), 0), sinkRefusal(/refusing \.dwcp-tmp: it is a symlink/));
  await assert.rejects(apply(sink, { mkdir: { path: 'd', mode: 0o755, mtimeUs: 0 } }), sinkRefusal(/refusing \.dwcp-tmp: it is a symlink/));
  await sink.close();
  assert.deepEqual(snapshot(outside), before);
  assert.equal(readlinkSync(join(root, '.dwcp-tmp')), outside, 'the symlink itself is left alone');

  // A shard's own temp area under a real .dwcp-tmp.
  rmSync(join(root, '.dwcp-tmp'));
  mkdirSync(join(root, '.dwcp-tmp'));
  symlinkSync(outside, join(root, '.dwcp-tmp', 'shard-1'));
  const shard = new DirSink({ streamId: 's', root, tempName: 'shard-1' });
  await assert.rejects(shard.recover(new Uint8Array(0), 0), sinkRefusal(/refusing \.dwcp-tmp\/shard-1: it is a symlink/));
  await shard.close();
  assert.deepEqual(snapshot(outside), before);

  // A file where the temp area goes is refused too, not replaced.
  rmSync(join(root, '.dwcp-tmp'), { recursive: true });
  writeFileSync(join(root, '.dwcp-tmp'), 'not a directory');
  const again = new DirSink({ streamId: 's', root });
  await assert.rejects(again.recover(new Uint8Array(0), 0), sinkRefusal(/refusing \.dwcp-tmp: it is not a directory/));
  await again.close();
  assert.equal(readFileSync(join(root, '.dwcp-tmp'), 'utf8'), 'not a directory');

  // A real temp area with links inside it, at any depth: recover empties it, removing the links only.
  rmSync(join(root, '.dwcp-tmp'));
  mkdirSync(join(root, '.dwcp-tmp', 'junk', 'deeper'), { recursive: true });
  symlinkSync(outside, join(root, '.dwcp-tmp', 'to-outside'));
  symlinkSync(outside, join(root, '.dwcp-tmp', 'junk', 'deeper', 'to-outside'));
  writeFileSync(join(root, '.dwcp-tmp', 'junk', 'stray.part'), 'stray');
  const clean = new DirSink({ streamId: 's', root });
  await clean.recover(new Uint8Array(0), 0);
  await clean.close();
  assert.deepEqual(readdirSync(join(root, '.dwcp-tmp')), []);
  assert.deepEqual(snapshot(outside), before);
});

test('a hard link planted in the temp area under the name of the next temp file is replaced, never written through', async (t) => {
  const { base, root, outside } = setup('temp-hardlink');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const before = snapshot(outside);
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);

  // The temp name is a hash of (path, version), so a local writer can plant it ahead.
  const data = new TextEncoder().encode('replicated content');
  const v = version(data.length);
  const tempName = tempNameOf('f', v);
  linkSync(join(outside, 'victim'), join(root, '.dwcp-tmp', tempName));
  await apply(sink, { put: { path: 'f', version: v, offset: 0 } }, data);
  await sink.flush();
  await sink.close();

  assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'replicated content');
  assert.deepEqual(snapshot(outside), before);
  assert.equal(lstatSync(join(outside, 'victim')).nlink, 1, 'the planted link was removed, not renamed into the tree');
});

test('a directory or the temp area swapped for a symlink between the frames of one file: nothing outside is written, moved or read in', async (t) => {
  const { base, root, outside } = setup('swap-frames');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const before = snapshot(outside);
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);
  await apply(sink, { mkdir: { path: 'd', mode: 0o755, mtimeUs: 0 } });
  const half = new TextEncoder().encode('first half;');
  const v = version(2 * half.length);

  // First half of d/file arrives while d is a directory; then a local writer
  // moves d away and puts a symlink to outside in its place: the commit is refused.
  await apply(sink, { put: { path: 'd/file', version: v, offset: 0 } }, half);
  renameSync(join(root, 'd'), join(root, 'd-moved'));
  symlinkSync(outside, join(root, 'd'));
  await assert.rejects(apply(sink, { put: { path: 'd/file', version: v, offset: half.length } }, half), sinkRefusal(/path "d\/file" refused: parent "d" is a symlink/));
  assert.deepEqual(snapshot(outside), before);
  assert.deepEqual(readdirSync(join(root, 'd-moved')), []);

  // Same for the temp area itself, with a file planted outside under the temp
  // file's name: the commit takes the sink's own temp file, not the planted one.
  rmSync(join(root, 'd'));
  renameSync(join(root, 'd-moved'), join(root, 'd'));
  await apply(sink, { put: { path: 'd/other', version: v, offset: 0 } }, half);
  renameSync(join(root, '.dwcp-tmp'), join(root, 'tmp-moved'));
  symlinkSync(outside, join(root, '.dwcp-tmp'));
  writeFileSync(join(outside, tempNameOf('d/other', v)), 'planted');
  const planted = snapshot(outside);
  await apply(sink, { put: { path: 'd/other', version: v, offset: half.length } }, half);
  await sink.close();
  assert.equal(readFileSync(join(root, 'd', 'other'), 'utf8'), 'first half;first half;');
  assert.deepEqual(snapshot(outside), planted, 'the planted file stays where it is');
});

/**
 * The local writer, on its own thread: flips <root>/d between a real
 * directory and a symlink to outside, as fast as it can, until stop[0] is set
 * or maxFlips is reached. The directory is parked under <root>/park/ while
 * the symlink is at d; when the sink made a new d meanwhile (d was missing
 * mid-flip), that one is parked under a new name. Counts flips in stop[1].
 */
const FLIPPER = `
const { workerData } = require('node:worker_threads');
const { lstatSync, renameSync } = require('node:fs');
const { join } = require('node:path');
const { root, shared, maxFlips } = workerData;
const flags = new Int32Array(shared);
const d = join(root, 'd'), link = join(root, 'd-link');
let parked = 0;
const tryRename = (from, to) => { try { renameSync(from, to); return true; } catch { return false; } };
for (let i = 0; i < maxFlips && Atomics.load(flags, 0) === 0; i++) {
  let st = null;
  try { st = lstatSync(d); } catch {}
  if (st === null) {
    if (!tryRename(join(root, 'park', 'd' + parked), d)) tryRename(link, d);
  } else if (st.isSymbolicLink()) {
    if (tryRename(d, link)) tryRename(join(root, 'park', 'd' + parked), d);
  } else if (tryRename(d, join(root, 'park', 'd' + (parked + 1)))) {
    parked++;
    tryRename(link, d);
  }
  Atomics.add(flags, 1, 1);
}
`;

/** Upper bound of the writer's flips (it normally stops when the sink is done). */
const MAX_FLIPS = 50_000_000;

test('a local writer racing the sink (a directory swapped for a symlink and back) never gets a write outside the root', async (t) => {
  const { base, root, outside } = setup('swap-race');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const before = snapshot(outside);
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);
  await apply(sink, { mkdir: { path: 'd', mode: 0o755, mtimeUs: 0 } });
  symlinkSync(outside, join(root, 'd-link'));
  mkdirSync(join(root, 'park'));

  // The writer runs on another thread, so any check and its use may see different things at d.
  const shared = new SharedArrayBuffer(8);
  const flags = new Int32Array(shared);
  const writer = new Worker(FLIPPER, { eval: true, workerData: { root, shared, maxFlips: MAX_FLIPS } });
  const writerDone = once(writer, 'exit');

  // Small files, one chunk each: temp write in the background, published
  // (renamed into d) by a flush every few files, so publishes race the
  // writer too. Stop at the first file found outside (the base code got
  // there within a few hundred).
  const refusals: string[] = [];
  const failures: string[] = [];
  try {
    for (let i = 0; i < RACE_FILES && readdirSync(outside).length === 2; i++) {
      const data = new TextEncoder().encode(`file ${i}`);
      try {
        await apply(sink, { put: { path: `d/f${i}`, version: version(data.length), offset: 0 } }, data);
        if (i % RACE_FILES_PER_FLUSH === RACE_FILES_PER_FLUSH - 1) await sink.flush();
      } catch (err) {
        (err instanceof SinkError ? refusals : failures).push((err as Error).message);
      }
    }
  } finally {
    Atomics.store(flags, 0, 1);
    await writerDone;
    await sink.close();
  }
  assert.ok(Atomics.load(flags, 1) > 0, 'the writer flipped d');
  assert.deepEqual(snapshot(outside), before, `nothing written outside (refusals ${refusals.length}, other errors ${failures.length})`);
  // Every refusal names the symlink; other errors are d missing or replaced mid-flip.
  for (const message of refusals) assert.match(message, /symlink/);
  for (const message of failures) assert.match(message, /ENOENT|ENOTDIR|EISDIR|ENOTEMPTY|EEXIST/);
});

test('crafted renames are refused whole: into itself, above the root, from a symlink, onto a parent or the temp area', async (t) => {
  const { base, root, outside } = setup('renames');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);
  const data = new TextEncoder().encode('content of f');
  const v = version(data.length);
  await apply(sink, { put: { path: 'f', version: v, offset: 0 } }, data);
  await apply(sink, { put: { path: 'd/g', version: v, offset: 0 } }, data);
  await sink.flush(); // whole small files land in the background; flush waits for them
  symlinkSync(join(outside, 'victim'), join(root, 'link'));
  const rootBefore = snapshot(root);
  const outsideBefore = snapshot(outside);

  const refused: Array<[string, string, RegExp]> = [
    ['f', 'f/x', /rename "f" -> "f\/x" refused: target is inside the source/],
    ['f', 'f/x/y', /target is inside the source/],
    ['d/g', 'd', /rename "d\/g" -> "d" refused: target is a parent of the source/],
    ['f', 'f', /same path/],
    ['f', '..', /path "\.\." refused: '\.\.' segment/],
    ['f', 'd/../..', /'\.\.' segment/],
    ['f', '.dwcp-tmp', /path "\.dwcp-tmp" refused: inside the reserved/],
    ['f', '.dwcp-tmp/x', /reserved/],
    ['f', '', /empty path/],
    ['link', 'stolen', /rename "link" -> "stolen" refused: source is a symlink/],
    ['link', 'link/x', /target is inside the source/],
  ];
  for (const [from, to, rule] of refused) {
    const linkVersion = { ...v, size: 7 };
    await assert.rejects(apply(sink, { rename: { from, to, version: from === 'link' ? linkVersion : v } }), sinkRefusal(rule), `${from} -> ${to}`);
    assert.deepEqual(snapshot(root), rootBefore, `${from} -> ${to} left the tree as it was`);
  }
  assert.deepEqual(snapshot(outside), outsideBefore);

  // A rename that is allowed still works afterwards.
  await apply(sink, { rename: { from: 'f', to: 'd/f', version: v } });
  assert.equal(readFileSync(join(root, 'd', 'f'), 'utf8'), 'content of f');
  await sink.close();
});
