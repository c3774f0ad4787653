// renameManyBeneath on a real file system: a batch of renameBeneath calls in
// one job, done in order, stopped at the first failure (nothing after it is
// renamed), that failure given back as data naming its target, with
// renameBeneath's confinement for every entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../../native-bindings/index.ts';
import { beneathFixture, DIR_FLAGS, type BeneathFixture } from '../helpers/beneath-fixture.ts';

/** The fixture with a staging directory root/tmp open as tmpFd, and a way to stage a file there. */
function setup(name: string): BeneathFixture & { tmpFd: number; stage(name: string, content: string): void } {
  const fixture = beneathFixture('dwcp-rename-many', name);
  mkdirSync(join(fixture.root, 'tmp'));
  const tmpFd = openSync(join(fixture.root, 'tmp'), DIR_FLAGS);
  return {
    ...fixture,
    tmpFd,
    stage: (file, content) => writeFileSync(join(fixture.root, 'tmp', file), content),
    done: () => {
      closeSync(tmpFd);
      fixture.done();
    },
  };
}

test('renameManyBeneath renames every entry in order: a later one to the same target wins, a directory there is replaced', async (t) => {
  const { root, outside, rootFd, tmpFd, stage, done } = setup('order');
  t.after(done);
  stage('one', 'one');
  stage('two', 'two');
  stage('three', 'three');
  stage('four', 'four');
  mkdirSync(join(root, 'a', 'dir', 'deep'), { recursive: true });
  symlinkSync(outside, join(root, 'a', 'dir', 'deep', 'to-outside'));

  const result = await native().renameManyBeneath(tmpFd, ['one', 'two', 'three', 'four'], rootFd, ['a/b/f', 'a/b/f', 'top', 'a/dir']);
  assert.deepEqual(result, { renamed: 4 });
  assert.equal(readFileSync(join(root, 'a', 'b', 'f'), 'utf8'), 'two');
  assert.equal(readFileSync(join(root, 'top'), 'utf8'), 'three');
  assert.equal(readFileSync(join(root, 'a', 'dir'), 'utf8'), 'four');
  assert.deepEqual(readdirSync(outside), ['victim']);
  assert.deepEqual(readdirSync(join(root, 'tmp')), []);

  assert.deepEqual(await native().renameManyBeneath(tmpFd, [], rootFd, []), { renamed: 0 });
});

test('renameManyBeneath stops at a refused entry in the middle: those before are renamed, none after, the error names its target', async (t) => {
  const { root, outside, rootFd, tmpFd, stage, done } = setup('refused');
  t.after(done);
  stage('first', 'first');
  stage('evil', 'evil');
  stage('last', 'last');

  const result = await native().renameManyBeneath(tmpFd, ['first', 'evil', 'last'], rootFd, ['a/first', 'link/victim', 'a/last']);
  assert.equal(result.renamed, 1);
  assert.equal(result.error?.code, 'ELOOP');
  assert.equal(result.error?.syscall, 'openat2');
  assert.match(result.error?.message ?? '', /^openat2 link\/victim: .*\(ELOOP\)$/);
  assert.equal(readFileSync(join(root, 'a', 'first'), 'utf8'), 'first');
  assert.equal(existsSync(join(root, 'a', 'last')), false);
  assert.deepEqual(readdirSync(join(root, 'tmp')).sort(), ['evil', 'last']);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');
  assert.equal(lstatSync(join(root, 'link')).isSymbolicLink(), true);

  // The caller goes on after the refused entry with a batch of its own.
  assert.deepEqual(await native().renameManyBeneath(tmpFd, ['last'], rootFd, ['a/last']), { renamed: 1 });
  assert.equal(readFileSync(join(root, 'a', 'last'), 'utf8'), 'last');
});

test('renameManyBeneath gives a path above the root (EXDEV), a missing parent (ENOENT) and a missing source as that entry\'s error', async (t) => {
  const { outside, rootFd, tmpFd, stage, done } = setup('errors');
  t.after(done);
  stage('f', 'staged');
  const n = native();
  const above = await n.renameManyBeneath(tmpFd, ['f'], rootFd, ['a/../../outside/victim']);
  assert.equal(above.renamed, 0);
  assert.equal(above.error?.code, 'EXDEV');
  const missingParent = await n.renameManyBeneath(tmpFd, ['f'], rootFd, ['missing/f']);
  assert.equal(missingParent.error?.code, 'ENOENT');
  assert.match(missingParent.error?.message ?? '', /^openat2 missing\/f: /);
  const missingSource = await n.renameManyBeneath(tmpFd, ['f', 'not-staged'], rootFd, ['a/f', 'a/g']);
  assert.equal(missingSource.renamed, 1);
  assert.equal(missingSource.error?.code, 'ENOENT');
  assert.equal(missingSource.error?.syscall, 'renameat2');
  assert.match(missingSource.error?.message ?? '', /^renameat2 a\/g: /);
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me');
});

test('renameManyBeneath refuses bad arguments before doing anything', async (t) => {
  const { root, rootFd, tmpFd, stage, done } = setup('arguments');
  t.after(done);
  stage('f', 'staged');
  const n = native();
  assert.throws(() => n.renameManyBeneath(tmpFd, ['f'], rootFd, []), TypeError);
  assert.throws(() => n.renameManyBeneath(tmpFd, ['f', 'a/b'], rootFd, ['x', 'y']), /fromNames\[1\]/);
  assert.throws(() => n.renameManyBeneath(tmpFd, ['f', 'f'], rootFd, ['x', 'a/..']), /toPaths\[1\]/);
  assert.throws(() => n.renameManyBeneath(tmpFd, ['f'], rootFd, ['/x']), TypeError);
  assert.throws(() => n.renameManyBeneath(tmpFd, ['f'], -1, ['x']), TypeError);
  assert.throws(() => n.renameManyBeneath(tmpFd, 'f' as unknown as string[], rootFd, ['x']), TypeError);
  assert.deepEqual(readdirSync(join(root, 'tmp')), ['f']);
});
