// The one-job small-file calls of the native addon, on a real file system:
// writeWholeBeneath, renameBeneath and readWholeBeneath keep openBeneath's
// confinement (no '..' above the directory, no symlink anywhere on the way),
// write and read exactly the bytes, mode and mtime asked for, and fail with
// the errno name and the path they were given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { MessageChannel } from 'node:worker_threads';
import { join } from 'node:path';
import { native } from '../../native-bindings/index.ts';
import { beneathFixture, DIR_FLAGS, type BeneathFixture } from '../helpers/beneath-fixture.ts';

/** An mtime with sub-second digits, microseconds. */
const MTIME_US = 1_700_000_000_123_456;
/** An mtime before 1970 (negative), microseconds. */
const OLD_MTIME_US = -86_400_000_001;

function setup(name: string): BeneathFixture {
  return beneathFixture('dwcp-beneath-whole', name);
}

/** An errno error with that code whose message names the syscall and the path. */
function failure(code: string, syscall: string, path: string) {
  return (err: unknown) => {
    const e = err as NodeJS.ErrnoException;
    return e.code === code && e.syscall === syscall && e.message.startsWith(`${syscall} ${path}: `) && e.message.endsWith(`(${code})`);
  };
}

test('writeWholeBeneath writes a new file whole with its mode and exact mtime, before 1970 too', async (t) => {
  const { root, rootFd, done } = setup('write');
  t.after(done);
  const n = native();
  const data = Buffer.from('the whole content of a small file\n'.repeat(100));
  await n.writeWholeBeneath(rootFd, 'a/b/new', data, 0o751, MTIME_US);
  const st = statSync(join(root, 'a', 'b', 'new'), { bigint: true });
  assert.deepEqual(readFileSync(join(root, 'a', 'b', 'new')), data);
  assert.equal(Number(st.mode & 0o7777n), 0o751);
  assert.equal(st.mtimeNs, BigInt(MTIME_US) * 1000n);

  await n.writeWholeBeneath(rootFd, 'old', new Uint8Array(0), 0o600, OLD_MTIME_US);
  const old = statSync(join(root, 'old'), { bigint: true });
  assert.equal(old.size, 0n);
  assert.equal(old.mtimeNs, BigInt(OLD_MTIME_US) * 1000n);

  // A view into a larger buffer writes just its bytes.
  const backing = Buffer.from('xxxxinsidexxxx');
  await n.writeWholeBeneath(rootFd, 'view', backing.subarray(4, 10), 0o644, MTIME_US);
  assert.equal(readFileSync(join(root, 'view'), 'utf8'), 'inside');
});

test('writeWholeBeneath never opens what is there (EEXIST), follows no symlink and stays beneath the directory', async (t) => {
  const { root, outside, rootFd, done } = setup('write-confined');
  t.after(done);
  const n = native();
  const data = Buffer.from('evil');
  writeFileSync(join(root, 'a', 'existing'), 'kept');
  await assert.rejects(n.writeWholeBeneath(rootFd, 'a/existing', data, 0o644, MTIME_US), failure('EEXIST', 'openat2', 'a/existing'));
  await assert.rejects(n.writeWholeBeneath(rootFd, 'a/file-link', data, 0o644, MTIME_US), failure('EEXIST', 'openat2', 'a/file-link'));
  await assert.rejects(n.writeWholeBeneath(rootFd, 'link/new', data, 0o644, MTIME_US), failure('ELOOP', 'openat2', 'link/new'));
  await assert.rejects(n.writeWholeBeneath(rootFd, '../outside/new', data, 0o644, MTIME_US), failure('EXDEV', 'openat2', '../outside/new'));
  await assert.rejects(n.writeWholeBeneath(rootFd, 'a/../../outside/new', data, 0o644, MTIME_US), failure('EXDEV', 'openat2', 'a/../../outside/new'));
  await assert.rejects(n.writeWholeBeneath(rootFd, join(outside, 'new'), data, 0o644, MTIME_US), failure('EXDEV', 'openat2', join(outside, 'new')));
  await assert.rejects(n.writeWholeBeneath(rootFd, 'missing/new', data, 0o644, MTIME_US), failure('ENOENT', 'openat2', 'missing/new'));
  assert.equal(readFileSync(join(root, 'a', 'existing'), 'utf8'), 'kept');
  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');

  // Arguments are checked before any call.
  assert.throws(() => n.writeWholeBeneath(rootFd, 'x', 'text' as unknown as Uint8Array, 0o644, MTIME_US), TypeError);
  assert.throws(() => n.writeWholeBeneath(rootFd, 'x', new Uint16Array(2) as unknown as Uint8Array, 0o644, MTIME_US), TypeError);
  assert.throws(() => n.writeWholeBeneath(rootFd, 'x', data, 0o644, String(MTIME_US) as unknown as number), TypeError);
  assert.throws(() => n.writeWholeBeneath(-1, 'x', data, 0o644, MTIME_US), TypeError);
  assert.equal(existsSync(join(root, 'x')), false);
});

test('renameBeneath resolves the target directory beneath the root and replaces a file, a symlink or a directory there', async (t) => {
  const { root, outside, rootFd, done } = setup('rename');
  t.after(done);
  const n = native();
  mkdirSync(join(root, 'tmp'));
  const tmpFd = openSync(join(root, 'tmp'), DIR_FLAGS);
  t.after(() => closeSync(tmpFd));
  const stage = (name: string, content: string) => writeFileSync(join(root, 'tmp', name), content);

  stage('one', 'one');
  await n.renameBeneath(tmpFd, 'one', rootFd, 'a/b/one');
  assert.equal(readFileSync(join(root, 'a', 'b', 'one'), 'utf8'), 'one');
  stage('top', 'top');
  await n.renameBeneath(tmpFd, 'top', rootFd, 'top');
  assert.equal(readFileSync(join(root, 'top'), 'utf8'), 'top');

  // A file there is replaced; a symlink there is replaced, never followed.
  stage('two', 'two');
  await n.renameBeneath(tmpFd, 'two', rootFd, 'a/b/one');
  assert.equal(readFileSync(join(root, 'a', 'b', 'one'), 'utf8'), 'two');
  stage('three', 'three');
  await n.renameBeneath(tmpFd, 'three', rootFd, 'a/file-link');
  assert.equal(lstatSync(join(root, 'a', 'file-link')).isFile(), true);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');

  // A directory there is removed first, without going through the link inside it.
  mkdirSync(join(root, 'a', 'dir', 'deep'), { recursive: true });
  symlinkSync(outside, join(root, 'a', 'dir', 'deep', 'to-outside'));
  stage('four', 'four');
  await n.renameBeneath(tmpFd, 'four', rootFd, 'a/dir');
  assert.equal(readFileSync(join(root, 'a', 'dir'), 'utf8'), 'four');
  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.deepEqual(readdirSync(join(root, 'tmp')), []);
});

test('renameBeneath refuses a symlinked parent (ELOOP), a path above the root (EXDEV) and a missing parent (ENOENT), naming the target', async (t) => {
  const { root, outside, rootFd, done } = setup('rename-confined');
  t.after(done);
  const n = native();
  mkdirSync(join(root, 'tmp'));
  writeFileSync(join(root, 'tmp', 'f'), 'staged');
  const tmpFd = openSync(join(root, 'tmp'), DIR_FLAGS);
  t.after(() => closeSync(tmpFd));

  await assert.rejects(n.renameBeneath(tmpFd, 'f', rootFd, 'link/victim'), failure('ELOOP', 'openat2', 'link/victim'));
  await assert.rejects(n.renameBeneath(tmpFd, 'f', rootFd, 'a/file-link/x'), failure('ELOOP', 'openat2', 'a/file-link/x'));
  await assert.rejects(n.renameBeneath(tmpFd, 'f', rootFd, '../outside/victim'), failure('EXDEV', 'openat2', '../outside/victim'));
  await assert.rejects(n.renameBeneath(tmpFd, 'f', rootFd, 'a/../../outside/victim'), failure('EXDEV', 'openat2', 'a/../../outside/victim'));
  await assert.rejects(n.renameBeneath(tmpFd, 'f', rootFd, 'missing/f'), failure('ENOENT', 'openat2', 'missing/f'));
  await assert.rejects(n.renameBeneath(tmpFd, 'not-staged', rootFd, 'a/f'), failure('ENOENT', 'renameat2', 'a/f'));
  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');
  assert.equal(readlinkSync(join(root, 'link')), outside);
  assert.deepEqual(readdirSync(join(root, 'tmp')), ['f']);

  // The target's last segment is one entry name; the source is one name.
  assert.throws(() => n.renameBeneath(tmpFd, 'f', rootFd, 'a/..'), TypeError);
  assert.throws(() => n.renameBeneath(tmpFd, 'f', rootFd, 'a/'), TypeError);
  assert.throws(() => n.renameBeneath(tmpFd, 'f', rootFd, '/x'), TypeError);
  assert.throws(() => n.renameBeneath(tmpFd, '../f', rootFd, 'x'), TypeError);
});

test('readWholeBeneath reads a regular file whole with its stat, and only the stat of anything else or of a larger file', async (t) => {
  const { root, done } = setup('read');
  t.after(done);
  const n = native();
  const data = Buffer.from('read me whole\n'.repeat(500));
  writeFileSync(join(root, 'a', 'b', 'f'), data);
  const st = statSync(join(root, 'a', 'b', 'f'), { bigint: true });
  const read = await n.readWholeBeneath(root, 'a/b/f', data.length);
  assert.deepEqual(read.data, data);
  assert.equal(read.changed, false);
  assert.deepEqual([read.mode, read.size, read.mtimeNs], [st.mode, st.size, st.mtimeNs]);

  // The bytes can move to a worker thread as the HDE pool moves them (an external buffer could not).
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(read.data, [read.data!.buffer]);
  port1.close();
  port2.close();
  assert.equal(read.data!.length, 0, 'transferred away');

  const tooBig = await n.readWholeBeneath(root, 'a/b/f', data.length - 1);
  assert.equal(tooBig.data, undefined, 'larger than maxBytes: not read');
  assert.equal(tooBig.size, BigInt(data.length));

  writeFileSync(join(root, 'empty'), '');
  assert.deepEqual((await n.readWholeBeneath(root, 'empty', 0)).data, Buffer.alloc(0));

  const dir = await n.readWholeBeneath(root, 'a', 1 << 20);
  assert.equal(dir.data, undefined);
  assert.equal(Number(dir.mode) & constants.S_IFMT, constants.S_IFDIR);

  // A fifo is opened without blocking and not read.
  execFileSync('mkfifo', [join(root, 'fifo')]);
  const fifo = await n.readWholeBeneath(root, 'fifo', 1 << 20);
  assert.equal(fifo.data, undefined);
  assert.equal(Number(fifo.mode) & constants.S_IFMT, constants.S_IFIFO);
});

test('readWholeBeneath follows no symlink below the root and stays beneath it, naming the path that failed', async (t) => {
  const { base, root, done } = setup('read-confined');
  t.after(done);
  const n = native();
  await assert.rejects(n.readWholeBeneath(root, 'a/file-link', 1 << 20), failure('ELOOP', 'openat2', 'a/file-link'));
  await assert.rejects(n.readWholeBeneath(root, 'link/victim', 1 << 20), failure('ELOOP', 'openat2', 'link/victim'));
  await assert.rejects(n.readWholeBeneath(root, '../outside/victim', 1 << 20), failure('EXDEV', 'openat2', '../outside/victim'));
  await assert.rejects(n.readWholeBeneath(root, 'missing', 1 << 20), failure('ENOENT', 'openat2', 'missing'));
  await assert.rejects(n.readWholeBeneath(join(base, 'no-root'), 'f', 1 << 20), failure('ENOENT', 'open', join(base, 'no-root')));

  // The root itself may be reached through a symlink (the operator's path).
  symlinkSync(root, join(base, 'root-link'));
  writeFileSync(join(root, 'f'), 'via the root link');
  assert.equal((await n.readWholeBeneath(join(base, 'root-link'), 'f', 1 << 20)).data?.toString(), 'via the root link');
  assert.throws(() => n.readWholeBeneath(root, 'f', -1), TypeError);
});
