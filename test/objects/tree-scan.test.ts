// scanTree: what a manifest holds (files and directories, sorted, exact
// versions), what it leaves out (symlinks, the temp area, exclusions), and
// that it copes with a tree of ten thousand files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanTree } from '../../src/streams/objects/tree-scan.ts';

test('scanTree lists files and directories sorted, with exact versions; symlinks and the temp area are skipped', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dwcp-objects-scan-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'd/e'), { recursive: true });
  mkdirSync(join(root, '.dwcp-tmp'));
  mkdirSync(join(root, 'skip-me'));
  writeFileSync(join(root, '.dwcp-tmp/partial'), 'temp');
  writeFileSync(join(root, 'skip-me/f'), 'x');
  writeFileSync(join(root, 'd/e/f.txt'), 'hello');
  writeFileSync(join(root, 'd-file'), '');
  writeFileSync(join(root, 'setuid'), 'x');
  chmodSync(join(root, 'setuid'), 0o4751);
  utimesSync(join(root, 'd/e/f.txt'), 1_234_567_890.654321, 1_234_567_890.654321);
  symlinkSync('/etc', join(root, 'link-dir'));
  symlinkSync('d/e/f.txt', join(root, 'd/link-file'));

  const scan = await scanTree(root, { exclude: ['skip-me'] });
  assert.deepEqual(scan.entries.map((e) => [e.path, e.directory]), [
    ['d', true],
    ['d-file', false],
    ['d/e', true],
    ['d/e/f.txt', false],
    ['setuid', false],
  ]);
  assert.equal(scan.skippedSymlinks, 2);
  const file = scan.entries.find((e) => e.path === 'd/e/f.txt')!;
  const st = lstatSync(join(root, 'd/e/f.txt'), { bigint: true });
  assert.deepEqual(file.version, { size: 5, mtimeUs: Number(st.mtimeNs / 1000n), mode: 0o644 & ~process.umask() });
  assert.equal(scan.entries.find((e) => e.path === 'setuid')!.version.mode, 0o4751);
  assert.equal(scan.entries.find((e) => e.path === 'd')!.version.size, 0);
});

test('scanTree covers a tree of ten thousand files in deep and wide directories', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dwcp-objects-scan-big-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  // 100 directories of 100 files, plus one chain 300 directories deep.
  for (let d = 0; d < 100; d++) {
    mkdirSync(join(root, `dir-${d}`));
    for (let f = 0; f < 100; f++) writeFileSync(join(root, `dir-${d}`, `file-${f}`), '');
  }
  const deep = Array.from({ length: 300 }, () => 'x').join('/');
  mkdirSync(join(root, deep), { recursive: true });
  writeFileSync(join(root, deep, 'bottom'), 'deep');

  const scan = await scanTree(root);
  assert.equal(scan.entries.length, 100 + 100 * 100 + 300 + 1);
  assert.ok(scan.entries.some((e) => e.path === `${deep}/bottom`));
  for (let i = 1; i < scan.entries.length; i++) assert.ok(scan.entries[i - 1].path < scan.entries[i].path);
});
