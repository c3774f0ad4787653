// The POSIX directory store: the store conformance suite on a real
// directory, and what only a directory has: symlinks planted inside the root
// are refused (naming the path) or read as absent, never followed out of it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirStore } from '../../src/streams/objects/store/dir-store.ts';
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
