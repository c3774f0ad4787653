// Small whole files (one frame each) are written by the objects sink in the
// background, several at once (dir-sink.ts MAX_BACKGROUND_FILES), and made
// durable together: one syncfs, then their renames, at flush or before an op
// that must see them. What must hold: after flush every one is there, whole,
// with its mode and mtime; none is under its name before its content is
// synced (a recover without flush shows none of them); later ops on the same
// path land after it; a refusal found in the background is thrown by flush,
// never lost, and nothing escapes the root.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { DirSink, MAX_BACKGROUND_FILES } from '../../src/streams/objects/dir-sink.ts';
import { SinkError } from '../../src/streams/stream.ts';
import { objectOpCodec, type FileVersion, type ObjectOp } from '../../src/wire/messages.ts';
import { sinkRootAndOutside } from '../helpers/sink-root.ts';

const MTIME_US = 1_700_000_000_123_456;


function version(size: number, mtimeUs = MTIME_US, mode = 0o640): FileVersion {
  return { size, mtimeUs, mode };
}

let seq = 0;
function apply(sink: DirSink, op: ObjectOp, data: Uint8Array = new Uint8Array(0)): Promise<void> {
  return sink.apply(++seq, objectOpCodec.encode(op), data);
}

test('many small files applied back to back are all there after flush, whole, with mode and mtime', async (t) => {
  const { base, root } = sinkRootAndOutside('many');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);
  const files = 4 * MAX_BACKGROUND_FILES + 3;
  for (let i = 0; i < files; i++) {
    const data = Buffer.from(`file ${i} `.repeat(i + 1));
    await apply(sink, { put: { path: `d${i % 5}/f${i}.txt`, version: version(data.length), offset: 0 } }, data);
  }
  await sink.flush();
  for (let i = 0; i < files; i++) {
    const path = join(root, `d${i % 5}`, `f${i}.txt`);
    assert.equal(readFileSync(path, 'utf8'), `file ${i} `.repeat(i + 1));
    const st = statSync(path, { bigint: true });
    assert.equal(Number(st.mode & 0o777n), 0o640);
    assert.equal(st.mtimeNs / 1000n, BigInt(MTIME_US));
  }
  assert.deepEqual(readdirSync(join(root, '.dwcp-tmp')), [], 'temp files left behind');
  await sink.close();
});

test('written files take their names only at flush: a recover without one (a crash) finds none of them, the temp area cleared', async (t) => {
  const { base, root } = sinkRootAndOutside('unsynced');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);
  const data = Buffer.from('not yet durable');
  for (let i = 0; i < MAX_BACKGROUND_FILES + 2; i++) await apply(sink, { put: { path: `f${i}`, version: version(data.length), offset: 0 } }, data);
  // The same version twice before a flush: written once, renamed once.
  await apply(sink, { put: { path: 'f0', version: version(data.length), offset: 0 } }, data);
  assert.deepEqual(readdirSync(root).filter((n) => n !== '.dwcp-tmp'), [], 'a name appeared before its content was synced');
  const recovered = new DirSink({ streamId: 's', root });
  await sink.close();
  await recovered.recover(new Uint8Array(0), 0);
  assert.deepEqual(readdirSync(root).filter((n) => n !== '.dwcp-tmp'), []);
  assert.deepEqual(readdirSync(join(root, '.dwcp-tmp')), [], 'unsynced temp files left behind');
  // Sent again after the "crash", they land at the next flush.
  for (let i = 0; i < 3; i++) await apply(recovered, { put: { path: `f${i}`, version: version(data.length), offset: 0 } }, data);
  await apply(recovered, { put: { path: 'f0', version: version(data.length), offset: 0 } }, data);
  await recovered.flush();
  assert.deepEqual(readdirSync(root).filter((n) => n !== '.dwcp-tmp').sort(), ['f0', 'f1', 'f2']);
  assert.equal(readFileSync(join(root, 'f2'), 'utf8'), 'not yet durable');
  assert.deepEqual(readdirSync(join(root, '.dwcp-tmp')), []);
  await recovered.close();
});

test('later ops on the same path land after the background file: a newer version, then a rename', async (t) => {
  const { base, root } = sinkRootAndOutside('order');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);
  const v1 = Buffer.from('version one');
  const v2 = Buffer.from('version two, longer');
  await apply(sink, { put: { path: 'f', version: version(v1.length, MTIME_US), offset: 0 } }, v1);
  await apply(sink, { put: { path: 'f', version: version(v2.length, MTIME_US + 1), offset: 0 } }, v2);
  await apply(sink, { rename: { from: 'f', to: 'g', version: version(v2.length, MTIME_US + 1) } });
  await apply(sink, { put: { path: 'h', version: version(v1.length), offset: 0 } }, v1);
  await apply(sink, { delete: { path: 'h' } });
  await sink.flush();
  assert.deepEqual(readdirSync(root).filter((n) => n !== '.dwcp-tmp').sort(), ['g']);
  assert.equal(readFileSync(join(root, 'g'), 'utf8'), 'version two, longer');
  await sink.close();
});

test('a refusal met by background work (its new parent turned into a symlink) is thrown by flush; nothing is written outside', async (t) => {
  const { base, root, outside } = sinkRootAndOutside('refusal');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);
  const data = Buffer.from('evil');
  // The parent "a" does not exist yet: the background work makes it at its rename.
  await apply(sink, { put: { path: 'a/f', version: version(data.length), offset: 0 } }, data);
  // apply resolved without an I/O turn in between, so the background work has not reached its rename yet.
  symlinkSync(outside, join(root, 'a'));
  await assert.rejects(sink.flush(), (err: unknown) => err instanceof SinkError && /symlink/.test(err.message));
  assert.deepEqual(readdirSync(outside), [], 'a file was written through the symlink');
  // Thrown once: the sink goes on (the receiver halts the stream on a refusal).
  await sink.flush();
  await sink.close();
});

test('a refusal among a flush\'s files stops their publishing there: those before it are in place, those after it are not, and recover clears them', async (t) => {
  const { base, root, outside } = sinkRootAndOutside('refusal-middle');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);
  const data = Buffer.from('small');
  const before = ['b0', 'b1', 'b2'];
  const after = ['c0', 'c1'];
  for (const path of before) await apply(sink, { put: { path, version: version(data.length), offset: 0 } }, data);
  await apply(sink, { put: { path: 'a/f', version: version(data.length), offset: 0 } }, data);
  for (const path of after) await apply(sink, { put: { path, version: version(data.length), offset: 0 } }, data);
  symlinkSync(outside, join(root, 'a'));
  await assert.rejects(sink.flush(), (err: unknown) => err instanceof SinkError && /"a\/f" refused/.test(err.message));
  assert.deepEqual(readdirSync(root).filter((n) => n !== '.dwcp-tmp').sort(), ['a', ...before]);
  assert.deepEqual(readdirSync(outside), [], 'a file was written through the symlink');
  await sink.recover(new Uint8Array(0), 0);
  assert.deepEqual(readdirSync(join(root, '.dwcp-tmp')), [], 'unpublished files left behind');
  await sink.close();
});
