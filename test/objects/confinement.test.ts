// No record can reach outside the sink root: not by '..', not by an absolute
// path, not through a symlink planted inside the root, not into the temp area.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { validateRelativePath } from '../../src/streams/objects/object-paths.ts';
import { SinkError } from '../../src/streams/stream.ts';
import { objectOpCodec } from '../../src/wire/messages.ts';
import type { ObjectOp } from '../../src/wire/messages.ts';
import { sinkRootAndOutside } from '../helpers/sink-root.ts';

const VERSION = { size: 4, mtimeUs: 1_700_000_000_000_000, mode: 0o644 };
const DATA = new TextEncoder().encode('evil');


function isRefusal(path: string, rule: RegExp) {
  return (err: unknown) => err instanceof SinkError && err.message.includes(JSON.stringify(path)) && rule.test(err.message);
}

async function apply(sink: DirSink, op: ObjectOp, data: Uint8Array = new Uint8Array(0)) {
  return sink.apply(1, objectOpCodec.encode(op), data);
}

test('validateRelativePath refuses escapes and names the rule; odd but clean names pass', () => {
  const refused: Array<[string, RegExp]> = [
    ['../x', /'\.\.' segment/],
    ['/etc/passwd', /absolute path/],
    ['a/../../x', /'\.\.' segment/],
    ['', /empty path/],
    ['a//b', /empty segment/],
    ['a/', /empty segment/],
    ['./a', /'\.' segment/],
    ['a/./b', /'\.' segment/],
    ['a\0b', /NUL/],
    ['.dwcp-tmp/x', /reserved/],
    ['.dwcp-tmp', /reserved/],
    [`a/${'é'.repeat(128)}`, /segment is longer than 255 bytes/],
    [`${'a/'.repeat(2048)}b`, /longer than 4095 bytes/],
  ];
  for (const [path, rule] of refused) assert.throws(() => validateRelativePath(path), isRefusal(path, rule), path);
  for (const path of ['a\\..\\b', '..a', 'a..', '.hidden', 'x/.dwcp-tmp/y', 'dir with space/ü ✓', '...', 'x'.repeat(255), `${'a/'.repeat(2047)}b`]) {
    assert.doesNotThrow(() => validateRelativePath(path), path);
  }
});

test('the sink refuses puts, deletes, renames and mkdirs that escape the root', async (t) => {
  const { base, root, outside } = sinkRootAndOutside('escape');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);
  writeFileSync(join(root, 'ok.txt'), 'ok');
  writeFileSync(join(outside, 'victim'), 'keep me');
  const passwd = statSync('/etc/passwd', { bigint: true });

  for (const path of ['../outside/x', '/etc/passwd', 'a/../../outside/x', '.dwcp-tmp/x']) {
    await assert.rejects(apply(sink, { put: { path, version: VERSION, offset: 0 } }, DATA), isRefusal(path, /refused/), path);
    await assert.rejects(apply(sink, { mkdir: { path, mode: 0o755, mtimeUs: 0 } }), isRefusal(path, /refused/), path);
    await assert.rejects(apply(sink, { rename: { from: 'ok.txt', to: path, version: VERSION } }), isRefusal(path, /refused/), path);
  }
  await assert.rejects(apply(sink, { delete: { path: '../outside/victim' } }), SinkError);
  await assert.rejects(apply(sink, { rename: { from: '../outside/victim', to: 'stolen', version: VERSION } }), SinkError);

  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');
  assert.equal(statSync('/etc/passwd', { bigint: true }).mtimeNs, passwd.mtimeNs);
  assert.deepEqual(readdirSync(root).sort(), ['.dwcp-tmp', 'ok.txt']);
  assert.deepEqual(readdirSync(join(root, '.dwcp-tmp')), []);
  await sink.close();
});

test('a symlink inside the sink root never redirects a write, delete, rename or chmod outside', async (t) => {
  const { base, root, outside } = sinkRootAndOutside('symlink');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  symlinkSync(outside, join(root, 'link'));
  symlinkSync(outside, join(root, 'link2'));
  writeFileSync(join(outside, 'victim'), 'keep me');
  writeFileSync(join(root, 'ok.txt'), 'evil');
  const outsideMode = statSync(outside).mode;
  const sink = new DirSink({ streamId: 's', root });
  await sink.recover(new Uint8Array(0), 0);

  // Through the link: refused, naming the symlink. A whole small file is
  // written in the background and refused when published (by flush).
  const through = ['link/evil', 'link/victim', 'link/sub/deeper'];
  for (const path of through) {
    await apply(sink, { put: { path, version: VERSION, offset: 0 } }, DATA);
    await assert.rejects(sink.flush(), isRefusal(path, /parent "link" is a symlink/), path);
    await assert.rejects(apply(sink, { put: { path, version: { ...VERSION, size: 8 }, offset: 0 } }, DATA), isRefusal(path, /parent "link" is a symlink/), `${path} in two frames`);
    await assert.rejects(apply(sink, { delete: { path } }), isRefusal(path, /symlink/), path);
    await assert.rejects(apply(sink, { mkdir: { path, mode: 0o777, mtimeUs: 0 } }), isRefusal(path, /symlink/), path);
  }
  await assert.rejects(apply(sink, { rename: { from: 'ok.txt', to: 'link/moved', version: { ...VERSION, mtimeUs: 0 } } }), isRefusal('link/moved', /symlink/));
  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');

  // The link itself as the target: it is replaced, never followed.
  await apply(sink, { mkdir: { path: 'link', mode: 0o700, mtimeUs: 0 } });
  assert.ok(lstatSync(join(root, 'link')).isDirectory());
  assert.equal(statSync(outside).mode, outsideMode, 'chmod did not follow the link');
  await apply(sink, { put: { path: 'link2', version: VERSION, offset: 0 } }, DATA);
  await sink.flush(); // a whole small file lands in the background; flush waits for it
  assert.ok(lstatSync(join(root, 'link2')).isFile());
  assert.equal(readFileSync(join(root, 'link2'), 'utf8'), 'evil');
  await apply(sink, { delete: { path: 'link2' } });
  assert.equal(existsSync(join(root, 'link2')), false);

  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');
  await sink.close();
});
