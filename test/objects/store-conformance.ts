// One conformance suite for every ObjectStore (store/object-store.ts): each
// store's test file calls defineStoreConformance with a way to open an empty
// store. What it pins down is what the objects source and sink rely on:
// listing with versions, ranged reads pinned to one version, uploads that are
// invisible until commit and resumable after a close, rename and remove with
// their repeats, directories, the chunk index's view, and refusals of paths
// outside the store that name the path.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FileVersion } from '../../src/wire/messages.ts';
import type { ObjectStore } from '../../src/streams/objects/store/object-store.ts';
import { publishSealedObjects, putWholeObject, readWholeObject } from '../../src/streams/objects/store/whole-object.ts';
import { sameVersion } from '../../src/streams/objects/file-version.ts';
import { SinkError } from '../../src/streams/stream.ts';

/** How the suite reaches one store implementation. */
export interface StoreBackend {
  /** A new, empty store, and how to drop it afterwards. */
  open(): Promise<{ store: ObjectStore; cleanup(): Promise<void> }>;
}

/** A fixed mtime (microseconds) with sub-second digits, so rounding shows. */
const MTIME_US = 1_700_000_000_123_456;

/** Paths every store refuses, whichever method is handed them. */
const ESCAPING_PATHS = ['../outside', 'a/../../outside', '/etc/passwd', '.dwcp-tmp/planted'];

function versionOf(data: string, mode = 0o640, mtimeUs = MTIME_US): FileVersion {
  return { size: Buffer.byteLength(data), mode, mtimeUs };
}

/** Write path whole through one upload and commit it. */
async function put(store: ObjectStore, path: string, data: string, version = versionOf(data)): Promise<void> {
  const upload = await store.beginUpload(path, version);
  assert.ok(upload, `upload of ${path} began`);
  await upload.write(Buffer.from(data), 0);
  await upload.commit();
}

/** The content of path, read whole through openRead; null when not there. */
async function content(store: ObjectStore, path: string): Promise<string | null> {
  const reader = await store.openRead(path);
  if (!reader) return null;
  try {
    const out = Buffer.alloc(reader.version.size);
    let done = 0;
    while (done < out.length) {
      const n = await reader.read(out, done, out.length - done, done);
      if (n === 0) break;
      done += n;
    }
    return out.subarray(0, done).toString();
  } finally {
    await reader.close();
  }
}

async function paths(store: ObjectStore): Promise<string[]> {
  return (await store.list()).entries.map((e) => `${e.path}${e.directory ? '/' : ''}`);
}

/** A SinkError whose message names path (as JSON) and says it is refused. */
function refusal(path: string): (err: unknown) => boolean {
  return (err) => err instanceof SinkError && err.message.includes(JSON.stringify(path)) && /refused/.test(err.message);
}

/**
 * The store without its optional whole-object calls (readWhole, putWhole,
 * publishMany): what readWholeObject, putWholeObject and
 * publishSealedObjects do for a store that lacks them.
 */
function withoutWholeCalls(store: ObjectStore): ObjectStore {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'readWhole' || key === 'putWhole' || key === 'publishMany') return undefined;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Each way a store is used for whole objects: its own calls, and the generic path. */
const WHOLE_WAYS: Array<[string, (store: ObjectStore) => ObjectStore]> = [
  ['its own whole-object calls', (store) => store],
  ['ranged reads and uploads', withoutWholeCalls],
];

/** Register the conformance tests for one store implementation. */
export function defineStoreConformance(name: string, backend: StoreBackend): void {
  describe(`object store conformance: ${name}`, () => {
    const withStore = (title: string, body: (store: ObjectStore) => Promise<void>) =>
      test(title, async () => {
        const { store, cleanup } = await backend.open();
        try {
          await body(store);
        } finally {
          await store.close();
          await cleanup();
        }
      });

    withStore('list: files and directories with exact versions, sorted with parents first, filtered by include', async (store) => {
      await store.makeDir('b', 0o750);
      await put(store, 'b/two.txt', 'second');
      await put(store, 'a.txt', 'first', versionOf('first', 0o604, MTIME_US + 1));
      const listing = await store.list();
      assert.deepEqual(listing.entries.map((e) => e.path), ['a.txt', 'b', 'b/two.txt']);
      const [a, b, two] = listing.entries;
      assert.deepEqual([a.directory, b.directory, two.directory], [false, true, false]);
      assert.deepEqual(a.version, versionOf('first', 0o604, MTIME_US + 1));
      assert.deepEqual(two.version, versionOf('second'));
      assert.equal(b.version.mode, 0o750);
      assert.equal(b.version.size, 0);
      const filtered = await store.list((p) => p.startsWith('b'));
      assert.deepEqual(filtered.entries.map((e) => e.path), ['b', 'b/two.txt']);
    });

    withStore('openRead: ranged reads of one version; a replaced object reads as changed; missing and directories are null', async (store) => {
      await put(store, 'f', '0123456789');
      await store.makeDir('d', 0o755);
      assert.equal(await store.openRead('missing'), null);
      assert.equal(await store.openRead('d'), null);
      const reader = await store.openRead('f');
      assert.ok(reader);
      try {
        assert.deepEqual(reader.version, versionOf('0123456789'));
        const into = Buffer.alloc(8, 0x2e);
        assert.equal(await reader.read(into, 2, 4, 3), 4);
        assert.equal(into.toString(), '..3456..');
        assert.equal(await reader.read(into, 0, 8, 8), 2, 'a read across the end stops at it');
        assert.equal(await reader.read(into, 0, 8, 10), 0, 'a read at the end reads nothing');
        assert.equal(await reader.unchanged(), true);
        await put(store, 'f', 'replaced!!', versionOf('replaced!!', 0o640, MTIME_US + 5_000_000));
        assert.equal(await reader.unchanged(), false, 'the reader sees that its version is no longer the object');
      } finally {
        await reader.close();
      }
      assert.equal(await content(store, 'f'), 'replaced!!');
    });

    withStore('sealed uploads stay invisible until published after syncSealed, then each is whole with its version, in order', async (store) => {
      await put(store, 'a', 'old a');
      const first = versionOf('first a', 0o640);
      const second = versionOf('second a, later', 0o600, MTIME_US + 1);
      const ups = [await store.beginUpload('a', first), await store.beginUpload('a', second), await store.beginUpload('d/b', versionOf('b'))];
      const data = ['first a', 'second a, later', 'b'];
      for (const [i, up] of ups.entries()) {
        assert.ok(up);
        await up.write(Buffer.from(data[i]), 0);
        await up.seal();
      }
      assert.equal(await content(store, 'a'), 'old a', 'a sealed upload is not visible');
      assert.deepEqual(await paths(store), ['a'], 'nor listed');
      await store.syncSealed();
      for (const up of ups) await up!.publish();
      await store.sync();
      assert.equal(await content(store, 'a'), 'second a, later', 'published in order: the later version wins');
      assert.equal(await store.holds('a', second), true);
      assert.equal(await content(store, 'd/b'), 'b');
    });

    for (const [way, view] of WHOLE_WAYS) {
      withStore(`whole objects (${way}): sealed by putWholeObject, invisible until published after syncSealed, then whole with their versions in op order`, async (plain) => {
        const store = view(plain);
        await put(store, 'a', 'old a');
        const first = versionOf('first a', 0o640);
        const second = versionOf('second a, later', 0o604, MTIME_US + 1);
        const sealed = [
          await putWholeObject(store, 'a', first, Buffer.from('first a')),
          await putWholeObject(store, 'a', second, Buffer.from('second a, later')),
          await putWholeObject(store, 'new/dir/b', versionOf(''), new Uint8Array(0)),
        ];
        assert.deepEqual(sealed.map((s) => s?.path), ['a', 'a', 'new/dir/b']);
        assert.equal(await content(store, 'a'), 'old a', 'a sealed object is not visible');
        assert.deepEqual(await paths(store), ['a'], 'nor listed');
        await store.syncSealed();
        assert.deepEqual(await publishSealedObjects(store, sealed.map((s) => s!)), { published: 3 });
        await store.sync();
        assert.equal(await content(store, 'a'), 'second a, later', 'published in order: the later version wins');
        assert.equal(await store.holds('a', second), true);
        assert.equal(await store.holds('new/dir/b', versionOf('')), true, 'an empty file, its parents made');
        const listed = (await store.list()).entries.find((e) => e.path === 'a');
        assert.deepEqual(listed?.version, second, 'mode and mtime as sealed');

        // One at a time through its own publish() too; none at all is nothing to do.
        const third = versionOf('third a', 0o640, MTIME_US + 2);
        const one = await putWholeObject(store, 'a', third, Buffer.from('third a'));
        await store.syncSealed();
        await one!.publish();
        assert.equal(await content(store, 'a'), 'third a');
        assert.deepEqual(await publishSealedObjects(store, []), { published: 0 });
      });

      withStore(`whole objects (${way}): readWholeObject reads a file whole with its version; missing or a directory is null, a larger one 'changed'`, async (plain) => {
        const store = view(plain);
        const v = versionOf('0123456789', 0o604);
        await put(store, 'd/f', '0123456789', v);
        await put(store, 'empty', '');
        const read = await readWholeObject(store, 'd/f', 10);
        assert.ok(read !== null && read !== 'changed');
        assert.equal(read.data.toString(), '0123456789');
        assert.deepEqual(read.version, v);
        const empty = await readWholeObject(store, 'empty', 10);
        assert.ok(empty !== null && empty !== 'changed');
        assert.equal(empty.data.length, 0);
        assert.equal(await readWholeObject(store, 'd/f', 9), 'changed', 'larger than maxBytes');
        assert.equal(await readWholeObject(store, 'missing', 10), null);
        assert.equal(await readWholeObject(store, 'd', 10), null, 'a directory');
        for (const path of ESCAPING_PATHS) {
          await assert.rejects(readWholeObject(store, path, 10), refusal(path), `readWholeObject ${path}`);
          await assert.rejects(putWholeObject(store, path, v, Buffer.from('0123456789')), refusal(path), `putWholeObject ${path}`);
        }
        assert.deepEqual(await paths(store), ['d/', 'd/f', 'empty']);
      });
    }

    withStore('an upload is invisible until its commit, then visible whole with its version; a held version needs no upload', async (store) => {
      await put(store, 'dir/f', 'old content');
      const v = versionOf('new content, longer', 0o600);
      const upload = await store.beginUpload('dir/f', v);
      assert.ok(upload);
      assert.equal(upload.path, 'dir/f');
      await upload.write(Buffer.from('new content'), 0);
      await upload.write(Buffer.from(', longer'), 11);
      await upload.sync();
      const back = Buffer.alloc(3);
      assert.equal(await upload.read(back, 0, 3, 4), 3);
      assert.equal(back.toString(), 'con', 'an upload reads back what was written');
      assert.equal(await content(store, 'dir/f'), 'old content', 'the old version stays until the commit');
      assert.equal(await store.holds('dir/f', v), false);
      await put(store, 'other', 'x');
      assert.deepEqual(await paths(store), ['dir/', 'dir/f', 'other'], 'an upload lists nowhere');
      await upload.commit();
      assert.equal(await content(store, 'dir/f'), 'new content, longer');
      assert.equal(await store.holds('dir/f', v), true);
      const listed = (await store.list()).entries.find((e) => e.path === 'dir/f');
      assert.ok(listed && sameVersion(listed.version, v), `listed version ${JSON.stringify(listed?.version)} is the committed one`);
      assert.equal(await store.beginUpload('dir/f', v), null, 'a repeat of a held version has nothing to write');

      // A new path's parents are made by the commit.
      await put(store, 'deep/er/new', 'n');
      assert.deepEqual(await paths(store), ['deep/', 'deep/er/', 'deep/er/new', 'dir/', 'dir/f', 'other']);
    });

    withStore('an aborted upload leaves nothing, not even for a resume', async (store) => {
      const v = versionOf('abandoned');
      const upload = await store.beginUpload('f', v);
      assert.ok(upload);
      await upload.write(Buffer.from('aband'), 0);
      await upload.abort();
      assert.deepEqual(await paths(store), []);
      assert.equal(await store.resumeUpload('f', v, 0), null);
    });

    withStore('an upload resumes after a close with the bytes a checkpoint counted; clearUploads drops all others', async (store) => {
      const v = versionOf('resumed content');
      const w = versionOf('dropped');
      const first = await store.beginUpload('f', v);
      const other = await store.beginUpload('g', w);
      assert.ok(first && other);
      await first.write(Buffer.from('resumed XXXX'), 0);
      await first.sync();
      await other.write(Buffer.from('drop'), 0);
      await first.close();
      await other.close();
      await store.close();

      assert.equal(await store.resumeUpload('f', v, 100), null, 'it never claims more than was written');
      assert.equal(await store.resumeUpload('f', versionOf('resumed content', 0o600), 3), null, 'another version is another upload');
      const resumed = await store.resumeUpload('f', v, 8);
      assert.ok(resumed);
      await store.clearUploads(resumed);
      assert.equal(await store.resumeUpload('g', w, 0), null, 'clearUploads dropped the other upload');
      const head = Buffer.alloc(16);
      assert.equal(await resumed.read(head, 0, 16, 0), 8, 'what lay past the resume point is gone');
      assert.equal(head.subarray(0, 8).toString(), 'resumed ');
      await resumed.write(Buffer.from('content'), 8);
      await resumed.commit();
      assert.equal(await content(store, 'f'), 'resumed content');
      assert.deepEqual(await paths(store), ['f']);
    });

    withStore('rename: moves a file of the given version, makes parents, replaces the target; a repeat does nothing; anything else refuses', async (store) => {
      await put(store, 'a', 'alpha');
      await put(store, 'x/target', 'to be replaced');
      await store.rename('a', 'new/dir/b', versionOf('alpha'));
      assert.deepEqual(await paths(store), ['new/', 'new/dir/', 'new/dir/b', 'x/', 'x/target']);
      assert.equal(await content(store, 'new/dir/b'), 'alpha');
      await store.rename('a', 'new/dir/b', versionOf('alpha'));
      assert.equal(await content(store, 'new/dir/b'), 'alpha', 'the repeat found its work done');

      await store.rename('new/dir/b', 'x/target', versionOf('alpha'));
      assert.equal(await content(store, 'x/target'), 'alpha');
      await put(store, 'c', 'gamma');
      const before = await paths(store);
      await assert.rejects(store.rename('c', 'd', versionOf('gamma', 0o777)), (err: Error) => err instanceof SinkError && /another version/.test(err.message));
      await assert.rejects(store.rename('missing', 'd', versionOf('gamma')), (err: Error) => err instanceof SinkError && /missing/.test(err.message));
      assert.deepEqual(await paths(store), before, 'a refused rename changes nothing');
    });

    withStore('remove: a file, a directory with everything below it, nothing at all', async (store) => {
      await put(store, 'keep', 'k');
      await put(store, 'gone', 'g');
      await put(store, 'tree/a/b', 'deep');
      await store.remove('gone');
      await store.remove('tree');
      await store.remove('never-was');
      assert.deepEqual(await paths(store), ['keep']);
    });

    withStore('makeDir: with its mode and parents, replacing a file in the way, changing the mode of one already there', async (store) => {
      await put(store, 'p/file', 'in the way');
      await store.makeDir('p/file', 0o700);
      await store.makeDir('q/r', 0o751);
      await store.makeDir('q/r', 0o755);
      const listing = await store.list();
      assert.deepEqual(listing.entries.map((e) => `${e.path}${e.directory ? '/' : ''}`), ['p/', 'p/file/', 'q/', 'q/r/']);
      assert.equal(listing.entries.find((e) => e.path === 'p/file')!.version.mode, 0o700);
      assert.equal(listing.entries.find((e) => e.path === 'q/r')!.version.mode, 0o755);
      await store.sync();
    });

    withStore('chunk files: the index lists files with their versions and reads them; a missing one is null', async (store) => {
      await put(store, 'a', 'alpha');
      await store.makeDir('d', 0o755);
      await put(store, 'd/b', 'beta!');
      const files = await store.openChunkFiles();
      try {
        const listed = [];
        for await (const f of files.list()) listed.push(f);
        assert.deepEqual(listed, [
          { path: 'a', version: { size: 5, mtimeUs: MTIME_US } },
          { path: 'd/b', version: { size: 5, mtimeUs: MTIME_US } },
        ]);
        assert.equal(await files.open('missing'), null);
        const reader = await files.open('d/b');
        assert.ok(reader);
        const out = Buffer.alloc(3);
        assert.equal(await reader.read(out, 0, 3, 2), 3);
        assert.equal(out.toString(), 'ta!');
        await reader.close();
      } finally {
        await files.close();
      }
    });

    withStore('paths outside the store are refused by every method with a SinkError naming the path, and change nothing', async (store) => {
      await put(store, 'ok', 'fine');
      const before = await paths(store);
      const v = versionOf('fine');
      for (const path of ESCAPING_PATHS) {
        await assert.rejects(store.beginUpload(path, v), refusal(path), `beginUpload ${path}`);
        await assert.rejects(store.resumeUpload(path, v, 0), refusal(path), `resumeUpload ${path}`);
        await assert.rejects(store.openRead(path), refusal(path), `openRead ${path}`);
        await assert.rejects(store.holds(path, v), refusal(path), `holds ${path}`);
        await assert.rejects(store.remove(path), refusal(path), `remove ${path}`);
        await assert.rejects(store.makeDir(path, 0o755), refusal(path), `makeDir ${path}`);
        await assert.rejects(store.rename('ok', path, v), refusal(path), `rename to ${path}`);
        await assert.rejects(store.rename(path, 'stolen', v), refusal(path), `rename from ${path}`);
      }
      assert.deepEqual(await paths(store), before);
      assert.equal(await content(store, 'ok'), 'fine');
    });
  });
}
