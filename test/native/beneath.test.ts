// Native file operations beneath a directory, on a real file system: no
// path leaves the directory, no symlink is followed, rm -r never goes
// through a link, and failures carry the errno name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, constants, existsSync, fstatSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../../native-bindings/index.ts';
import { beneathFixture, DIR_FLAGS, type BeneathFixture } from '../helpers/beneath-fixture.ts';

/** Entries in one directory removed by removeAt (glibc reads 32 KiB of entries per getdents). */
const MANY_ENTRIES = 3000;

function setup(name: string): BeneathFixture {
  return beneathFixture('dwcp-beneath', name);
}

function errno(code: string) {
  return (err: unknown) => (err as NodeJS.ErrnoException).code === code && (err as Error).message.includes(`(${code})`);
}

test('openBeneath stays beneath the directory and follows no symlink, the last component included', async (t) => {
  const { root, outside, rootFd, done } = setup('open');
  t.after(done);
  const n = native();

  // Inside, plain: works, and the fd is the directory's.
  const fd = await n.openBeneath(rootFd, 'a/b', DIR_FLAGS, 0);
  assert.equal(fstatSync(fd).ino, lstatSync(join(root, 'a', 'b')).ino);
  closeSync(fd);

  // Escapes: '..' above the start and absolute paths are EXDEV, symlinks ELOOP.
  await assert.rejects(n.openBeneath(rootFd, '../outside/victim', constants.O_RDONLY, 0), errno('EXDEV'));
  await assert.rejects(n.openBeneath(rootFd, 'a/../../outside', DIR_FLAGS, 0), errno('EXDEV'));
  await assert.rejects(n.openBeneath(rootFd, join(outside, 'victim'), constants.O_RDONLY, 0), errno('EXDEV'));
  await assert.rejects(n.openBeneath(rootFd, 'link/victim', constants.O_RDWR, 0), errno('ELOOP'));
  await assert.rejects(n.openBeneath(rootFd, 'link/new', constants.O_RDWR | constants.O_CREAT, 0o600), errno('ELOOP'));
  await assert.rejects(n.openBeneath(rootFd, 'a/file-link', constants.O_RDWR | constants.O_TRUNC, 0), errno('ELOOP'));
  await assert.rejects(n.openBeneath(rootFd, '/proc/self/root/etc/passwd', constants.O_RDONLY, 0), errno('EXDEV'));
  await assert.rejects(n.openBeneath(rootFd, 'missing/x', constants.O_RDONLY, 0), errno('ENOENT'));
  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');

  // Created files get the mode asked for (under the umask) and a usable fd.
  const created = await n.openBeneath(rootFd, 'a/new', constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
  writeSync(created, 'hello');
  closeSync(created);
  assert.equal(readFileSync(join(root, 'a', 'new'), 'utf8'), 'hello');
  assert.equal(lstatSync(join(root, 'a', 'new')).mode & 0o777, 0o600);
});

test('the *At calls act on one entry and never follow it; names with a slash are refused', async (t) => {
  const { root, outside, rootFd, done } = setup('at');
  t.after(done);
  const n = native();
  const a = await n.openBeneath(rootFd, 'a', DIR_FLAGS, 0);
  t.after(() => closeSync(a));

  // statAt is lstat: the link is reported as a link; a missing name is undefined.
  const st = await n.statAt(a, 'file-link');
  assert.equal(Number(st!.mode) & constants.S_IFMT, constants.S_IFLNK);
  assert.equal(await n.statAt(a, 'nothing'), undefined);
  assert.equal(typeof st!.mtimeNs, 'bigint');

  // mkdirAt, renameAt (noReplace refuses an existing target), unlinkAt of the link only.
  await n.mkdirAt(a, 'made', 0o750);
  assert.ok(lstatSync(join(root, 'a', 'made')).isDirectory());
  await assert.rejects(n.renameAt(a, 'made', rootFd, 'link', true), errno('EEXIST'));
  await n.renameAt(a, 'made', rootFd, 'moved', false);
  assert.ok(lstatSync(join(root, 'moved')).isDirectory());
  await n.unlinkAt(a, 'file-link');
  assert.equal(existsSync(join(root, 'a', 'file-link')), false);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');

  // Names are single entries: a slash, '.', '..' are refused before any call.
  assert.throws(() => n.statAt(a, '../link'), TypeError);
  assert.throws(() => n.unlinkAt(rootFd, 'link/victim'), TypeError);
  assert.throws(() => n.mkdirAt(rootFd, '..', 0o700), TypeError);
  assert.throws(() => n.renameAt(rootFd, 'moved', rootFd, 'a/x', false), TypeError);
});

test('removeAt and clearDirAt remove trees without going through links', async (t) => {
  const { root, outside, rootFd, done } = setup('remove');
  t.after(done);
  const n = native();
  mkdirSync(join(root, 'tree', 'x', 'y'), { recursive: true });
  writeFileSync(join(root, 'tree', 'x', 'y', 'f'), 'f');
  symlinkSync(outside, join(root, 'tree', 'x', 'to-outside'));
  symlinkSync(join(outside, 'victim'), join(root, 'tree', 'victim-link'));

  // Enough entries that readdir needs several batches while entries go.
  mkdirSync(join(root, 'tree', 'many'));
  for (let i = 0; i < MANY_ENTRIES; i++) writeFileSync(join(root, 'tree', 'many', `entry-with-a-long-name-${i}`), '');

  assert.equal(await n.removeAt(rootFd, 'tree'), true);
  assert.equal(await n.removeAt(rootFd, 'tree'), false, 'missing: nothing to remove');
  assert.equal(existsSync(join(root, 'tree')), false);
  assert.deepEqual(readdirSync(outside), ['victim']);

  // A link to a directory is removed as a link.
  assert.equal(await n.removeAt(rootFd, 'link'), true);
  assert.deepEqual(readdirSync(outside), ['victim']);

  // clearDirAt keeps one name and removes the rest.
  symlinkSync(outside, join(root, 'a', 'b', 'to-outside'));
  writeFileSync(join(root, 'a', 'keep.part'), 'kept');
  await n.clearDirAt(rootFd, 'a');
  assert.deepEqual(readdirSync(root), ['a']);
  const a = await n.openBeneath(rootFd, 'a', DIR_FLAGS, 0);
  t.after(() => closeSync(a));
  await n.clearDirAt(a, 'keep.part');
  assert.deepEqual(readdirSync(join(root, 'a')), ['keep.part']);
  await n.clearDirAt(a);
  assert.deepEqual(readdirSync(join(root, 'a')), []);
  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');
});
