// A directory replicated through DirSource -> DirSink: a mixed tree arrives
// byte-identical with modes and mtimes, a second session sends nothing, and
// edits, moves and deletions at the source follow with the right ops.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { DirSource } from '../../src/streams/objects/dir-source.ts';
import { scanTree } from '../../src/streams/objects/tree-scan.ts';
import { opsOf, pump, treeDifferences } from './link-harness.ts';

const BIG_FILE_BYTES = 20 * 1024 * 1024;

function makeMixedTree(root: string): void {
  mkdirSync(join(root, 'a/b/c'), { recursive: true });
  mkdirSync(join(root, 'empty-dir'));
  mkdirSync(join(root, 'private'), { mode: 0o700 });
  mkdirSync(join(root, '日本語 dir'));
  writeFileSync(join(root, 'big.bin'), randomBytes(BIG_FILE_BYTES));
  writeFileSync(join(root, 'empty.txt'), '');
  writeFileSync(join(root, 'a/b/c/empty-deep'), '');
  for (let i = 0; i < 40; i++) writeFileSync(join(root, `a/small-${i}.txt`), `small file ${i}\n`.repeat(i + 1));
  writeFileSync(join(root, 'with space.txt'), 'spaces');
  writeFileSync(join(root, 'ünïcödé ✓.txt'), 'unicode');
  writeFileSync(join(root, '日本語 dir/ファイル.bin'), randomBytes(3000));
  writeFileSync(join(root, 'back\\slash'), 'a backslash is a plain character');
  writeFileSync(join(root, 'new\nline'), 'newline in the name');
  writeFileSync(join(root, 'private/key'), 'secret', { mode: 0o600 });
  writeFileSync(join(root, 'a/b/run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(root, 'a/b/run.sh'), 0o755);
  chmodSync(join(root, 'with space.txt'), 0o640);
  chmodSync(join(root, 'private'), 0o700);
  // Odd mtimes: old, sub-second, one microsecond past the first day of 1970.
  utimesSync(join(root, 'empty.txt'), 1_000_000_000.123456, 1_000_000_000.123456);
  utimesSync(join(root, 'a/small-3.txt'), 1_600_000_000.987654, 1_600_000_000.987654);
  utimesSync(join(root, 'back\\slash'), 86_400.000001, 86_400.000001);
  // A symlink at the source is skipped, never followed.
  symlinkSync('/etc', join(root, 'link-to-etc'));
}

test('a mixed tree replicates byte-identical, a resumed session sends nothing, changes follow', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'dwcp-objects-replicate-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const src = join(base, 'src');
  const dst = join(base, 'dst');
  mkdirSync(src);
  mkdirSync(dst);
  makeMixedTree(src);

  // First session: everything goes over.
  const replicated: string[] = [];
  const source1 = new DirSource({ streamId: 's', root: src, once: true, watch: false, onReplicated: (p) => replicated.push(p) });
  const first = await pump(source1, new DirSink({ streamId: 's', root: dst }));
  assert.deepEqual(treeDifferences(src, dst), []);
  // Stronger than the 1 us the protocol allows: the sink lands on the exact microsecond.
  const mtimes = async (root: string) => (await scanTree(root)).entries.filter((e) => !e.directory).map((e) => [e.path, e.version.mtimeUs]);
  assert.deepEqual(await mtimes(dst), await mtimes(src));
  const progress = source1.progress();
  assert.equal(progress.inSync, true);
  assert.equal(progress.filesDone, progress.filesTotal);
  assert.equal(progress.bytesDone, progress.bytesTotal);
  assert.ok(progress.bytesTotal > BIG_FILE_BYTES, `bytesTotal ${progress.bytesTotal}`);
  assert.equal(replicated.length, progress.filesDone);
  assert.ok(replicated.includes('big.bin'));
  assert.equal(opsOf(first.ops, 'put').filter((op) => op.put!.path === 'big.bin').length, BIG_FILE_BYTES / (256 * 1024));
  const emptyPuts = opsOf(first.ops, 'put').filter((op) => op.put!.path === 'empty.txt');
  assert.equal(emptyPuts.length, 1, 'an empty file is one PutChunk');

  // Second session (both agents restarted): the resume manifest says it is all there.
  const source2 = new DirSource({ streamId: 's', root: src, once: true, watch: false });
  const second = await pump(source2, new DirSink({ streamId: 's', root: dst }), { seq: first.seq, checkpoint: first.checkpoint });
  assert.deepEqual(second.ops, []);
  assert.equal(source2.progress().inSync, true);

  // Edit, append, move (file and directory contents), delete a file and a directory.
  writeFileSync(join(src, 'a/small-1.txt'), 'rewritten with another size');
  appendFileSync(join(src, 'a/small-2.txt'), 'appended');
  renameSync(join(src, '日本語 dir/ファイル.bin'), join(src, 'a/b/moved ファイル.bin'));
  mkdirSync(join(src, 'fresh'));
  renameSync(join(src, 'a/small-5.txt'), join(src, 'fresh/small-5-renamed.txt'));
  rmSync(join(src, 'a/small-6.txt'));
  rmSync(join(src, 'a/b/c'), { recursive: true });
  chmodSync(join(src, 'a/small-7.txt'), 0o600);

  const source3 = new DirSource({ streamId: 's', root: src, once: true, watch: false });
  const third = await pump(source3, new DirSink({ streamId: 's', root: dst }), { seq: second.seq, checkpoint: second.checkpoint });
  assert.deepEqual(treeDifferences(src, dst), []);

  const renames = opsOf(third.ops, 'rename').map((op) => [op.rename!.from, op.rename!.to]);
  assert.deepEqual(renames.sort(), [
    ['a/small-5.txt', 'fresh/small-5-renamed.txt'],
    ['日本語 dir/ファイル.bin', 'a/b/moved ファイル.bin'],
  ]);
  const putPaths = new Set(opsOf(third.ops, 'put').map((op) => op.put!.path));
  assert.deepEqual([...putPaths].sort(), ['a/small-1.txt', 'a/small-2.txt', 'a/small-7.txt']);
  assert.deepEqual(opsOf(third.ops, 'delete').map((op) => op.delete!.path), ['a/small-6.txt', 'a/b/c']);
  assert.deepEqual(opsOf(third.ops, 'mkdir').map((op) => op.mkdir!.path), ['fresh']);
  // Directories first, then moves, then puts, then deletes.
  const kinds = third.ops.map((op) => Object.keys(op)[0]);
  const lastIndex = (k: string) => kinds.lastIndexOf(k);
  assert.ok(lastIndex('mkdir') < kinds.indexOf('rename') && lastIndex('rename') < kinds.indexOf('put') && lastIndex('put') < kinds.indexOf('delete'), kinds.join(','));
});

test('a file replaces a directory and a directory replaces a file', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'dwcp-objects-swap-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const src = join(base, 'src');
  const dst = join(base, 'dst');
  mkdirSync(join(src, 'was-dir/inner'), { recursive: true });
  writeFileSync(join(src, 'was-dir/inner/f'), 'inside');
  writeFileSync(join(src, 'was-file'), 'plain');
  mkdirSync(dst);

  const first = await pump(new DirSource({ streamId: 's', root: src, once: true, watch: false }), new DirSink({ streamId: 's', root: dst }));
  assert.deepEqual(treeDifferences(src, dst), []);

  rmSync(join(src, 'was-dir'), { recursive: true });
  writeFileSync(join(src, 'was-dir'), 'now a file');
  rmSync(join(src, 'was-file'));
  mkdirSync(join(src, 'was-file'));
  writeFileSync(join(src, 'was-file/child'), 'now in a directory');

  await pump(new DirSource({ streamId: 's', root: src, once: true, watch: false }), new DirSink({ streamId: 's', root: dst }), { seq: first.seq, checkpoint: first.checkpoint });
  assert.deepEqual(treeDifferences(src, dst), []);
});
