// Small objects whole, over any ObjectStore: read or written and sealed in
// one call where the store offers one (a directory does each in one native
// job), else through its ranged reader and its uploads; published many at
// once where the store offers that, else one by one. The objects source
// and sink use these for files that fit in one frame.

import type { FileVersion } from '../../../wire/messages.ts';
import type { ObjectStore, PublishOutcome, SealedObject, WholeObject } from './object-store.ts';

/**
 * Read path whole: its bytes and version, null when it is not a regular file
 * there, 'changed' when it is larger than maxBytes or changed while read.
 * Throws when it is there but cannot be read.
 */
export async function readWholeObject(store: ObjectStore, path: string, maxBytes: number): Promise<WholeObject | 'changed' | null> {
  if (store.readWhole) return store.readWhole(path, maxBytes);
  const reader = await store.openRead(path);
  if (reader === null) return null;
  try {
    const { version } = reader;
    if (version.size > maxBytes) return 'changed';
    const data = Buffer.allocUnsafe(version.size);
    let done = 0;
    while (done < data.length) {
      const n = await reader.read(data, done, data.length - done, done);
      if (n === 0) break;
      done += n;
    }
    if (done < data.length || !(await reader.unchanged())) return 'changed';
    return { version, data };
  } finally {
    await reader.close();
  }
}

/**
 * Write version of path whole from data and seal it (published after the
 * store's syncSealed()); null when the store holds that version already.
 */
export async function putWholeObject(store: ObjectStore, path: string, version: FileVersion, data: Uint8Array): Promise<SealedObject | null> {
  if (store.putWhole) return store.putWhole(path, version, data);
  const upload = await store.beginUpload(path, version);
  if (upload === null) return null;
  try {
    await upload.write(data, 0);
    await upload.seal();
  } catch (err) {
    await upload.close().catch(() => undefined);
    throw err;
  }
  return upload;
}

/**
 * Publish sealed objects at their paths in op order (after the store's
 * syncSealed()), stopping at the first failure: the outcome says how many
 * were published and why the next one was not.
 */
export async function publishSealedObjects(store: ObjectStore, objects: readonly SealedObject[]): Promise<PublishOutcome> {
  if (store.publishMany) return store.publishMany(objects);
  for (let i = 0; i < objects.length; i++) {
    try {
      await objects[i].publish();
    } catch (error) {
      return { published: i, error };
    }
  }
  return { published: objects.length };
}
