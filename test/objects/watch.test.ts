// How a DirSource session ends or keeps going: `once` ends by itself when
// the tree is in sync; watch mode picks up a change well before the
// periodic scan would, and ends when its signal aborts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { DirSource } from '../../src/streams/objects/dir-source.ts';
import { pump, treeDifferences } from './link-harness.ts';

/** Bound on waits in these tests; generous for a loaded 2-core machine. */
const WAIT_LIMIT_MS = 20_000;
/** A scan interval the tests never reach: only the watch can explain a pickup. */
const NEVER_MS = 3_600_000;
/** How often the test looks at the destination while waiting. */
const POLL_MS = 50;

function setup(name: string) {
  const base = mkdtempSync(join(tmpdir(), `dwcp-objects-${name}-`));
  const src = join(base, 'src');
  const dst = join(base, 'dst');
  mkdirSync(join(src, 'sub'), { recursive: true });
  mkdirSync(dst);
  writeFileSync(join(src, 'sub/first.txt'), 'first');
  return { base, src, dst };
}

function withinLimit<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${WAIT_LIMIT_MS} ms`)), WAIT_LIMIT_MS);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

test('a once session ends by itself, in sync, on an empty and on a populated tree', async (t) => {
  const { base, src, dst } = setup('once');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const emptySrc = join(base, 'empty-src');
  const emptyDst = join(base, 'empty-dst');
  mkdirSync(emptySrc);
  mkdirSync(emptyDst);

  const nothing = new DirSource({ streamId: 's', root: emptySrc, once: true, scanIntervalMs: NEVER_MS });
  const none = await withinLimit(pump(nothing, new DirSink({ streamId: 's', root: emptyDst })), 'once on an empty tree');
  assert.deepEqual(none.ops, []);
  assert.equal(nothing.progress().inSync, true);

  const source = new DirSource({ streamId: 's', root: src, once: true, scanIntervalMs: NEVER_MS });
  const some = await withinLimit(pump(source, new DirSink({ streamId: 's', root: dst })), 'once on a populated tree');
  assert.equal(some.ops.length, 2);
  assert.equal(source.progress().inSync, true);
  assert.deepEqual(treeDifferences(src, dst), []);
});

test('watch mode picks up new files without waiting for the periodic scan, and ends on abort', async (t) => {
  const { base, src, dst } = setup('watch');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const source = new DirSource({ streamId: 's', root: src, watch: true, scanIntervalMs: NEVER_MS });
  const session = new AbortController();
  const running = pump(source, new DirSink({ streamId: 's', root: dst }), { flushEvery: 1, signal: session.signal });
  t.after(() => session.abort());

  await withinLimit(source.whenInSync(), 'initial sync');
  assert.equal(readFileSync(join(dst, 'sub/first.txt'), 'utf8'), 'first');

  // New files, one in a new directory: only the watch can notice them in time.
  writeFileSync(join(src, 'sub/second.txt'), 'second');
  mkdirSync(join(src, 'new-dir'));
  writeFileSync(join(src, 'new-dir/third.txt'), 'third');
  const arrived = async () => {
    const deadline = Date.now() + WAIT_LIMIT_MS;
    while (!(existsSync(join(dst, 'sub/second.txt')) && existsSync(join(dst, 'new-dir/third.txt')))) {
      if (Date.now() > deadline) return;
      await sleep(POLL_MS);
    }
  };
  await withinLimit(arrived(), 'new files at the destination');
  await withinLimit(source.whenInSync(), 'sync after the change');
  assert.deepEqual(treeDifferences(src, dst), []);

  // Aborting the session ends the records() iteration.
  session.abort();
  const result = await withinLimit(running, 'session end after abort');
  assert.ok(result.ops.some((op) => op.put?.path === 'new-dir/third.txt'));
});
