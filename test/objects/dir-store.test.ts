// The POSIX directory store: the store conformance suite on a real
// directory, and what only a directory has: symlinks planted inside the root
// are refused (naming the path) or read as absent, never followed out of it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirStore, PUBLISH_BATCH } from '../../src/streams/objects/store/dir-store.ts';
import { publishSealedObjects, putWholeObject } from '../../src/streams/objects/store/whole-object.ts';
import { SinkError } from '../../src/streams/stream.ts';
import { defineStoreConformance } from './store-conformance.ts';

defineStoreConformance('POSIX directory', {
  open: async () => {
    const base = mkdtempSync(join(tmpdir(), 'dwcp-dir-store-'));
    const root = join(base, 'root');
    mkdirSync(root);
    return { store: new DirStore({ root }), cleanup: async () => rmSync(base, { recursive: true, force: true }) };
  },
});

test('a directory store refuses writes through a symlink inside its root, naming the path, and reads a symlink as absent', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'dwcp-dir-store-links-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, 'victim'), 'keep me');
  symlinkSync(outside, join(root, 'link'));
  symlinkSync(join(outside, 'victim'), join(root, 'file-link'));
  const store = new DirStore({ root });
  t.after(() => store.close());

  const v = { size: 4, mtimeUs: 1_700_000_000_000_000, mode: 0o644 };
  const refusedNaming = (path: string) => (err: unknown) => err instanceof SinkError && err.message.includes(JSON.stringify(path)) && /symlink/.test(err.message);
  await assert.rejects(store.beginUpload('link/victim', v), refusedNaming('link/victim'));
  await assert.rejects(store.remove('link/victim'), refusedNaming('link/victim'));
  await assert.rejects(store.makeDir('link/d', 0o755), refusedNaming('link/d'));
  await assert.rejects(store.rename('link/victim', 'stolen', { ...v, size: 7 }), refusedNaming('link/victim'));
  assert.equal(await store.openRead('file-link'), null, 'a symlink is not a file to read');
  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.deepEqual((await store.list()).entries, [], 'symlinks are not listed');
});

test('publishMany stops at a file refused in the middle (a symlinked parent): those before are published, none after, the refusal names its path', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'dwcp-dir-store-publish-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  const store = new DirStore({ root });
  t.after(() => store.close());

  // More files than one native job takes, the refused one in the second job; parents made on the way.
  const v = (data: string) => ({ size: data.length, mtimeUs: 1_700_000_000_000_000, mode: 0o644 });
  const paths = Array.from({ length: PUBLISH_BATCH + 10 }, (_, i) => (i === PUBLISH_BATCH + 4 ? 'link/evil' : `d${i % 7}/f${i}`));
  const sealed = [];
  for (const path of paths) sealed.push((await putWholeObject(store, path, v(path), Buffer.from(path)))!);
  symlinkSync(outside, join(root, 'link'));
  await store.syncSealed();

  const outcome = await publishSealedObjects(store, sealed);
  assert.equal(outcome.published, PUBLISH_BATCH + 4);
  assert.ok(outcome.error instanceof SinkError, `a refusal, got ${String(outcome.error)}`);
  assert.match((outcome.error as Error).message, /path "link\/evil" refused: .*symlink/);
  for (const path of paths.slice(0, PUBLISH_BATCH + 4)) assert.equal(readFileSync(join(root, path), 'utf8'), path);
  for (const path of paths.slice(PUBLISH_BATCH + 5)) assert.equal(existsSync(join(root, path)), false, `${path} was published after the refusal`);
  assert.deepEqual(readdirSync(outside), []);
  assert.equal(readdirSync(join(root, '.dwcp-tmp')).length, 6, 'the refused file and those after it stay unfinished uploads');
  await store.clearUploads();
  assert.deepEqual(readdirSync(join(root, '.dwcp-tmp')), []);
});
