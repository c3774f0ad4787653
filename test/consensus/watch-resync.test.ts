// WatchedKeys: what a watch has seen and the catch-up it delivers after a
// gap whose history is gone. Pure: no store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyValue } from '../../src/consensus/consensus-store.ts';
import { WatchedKeys } from '../../src/consensus/watch-resync.ts';

/** A key-value at a revision. */
function kv(key: string, value: string, modRevision: number): KeyValue {
  return { key, value: Buffer.from(value), modRevision, lease: 0 };
}

test('catch-up: puts for keys written since (in revision order), deletes for keys gone, nothing for unchanged keys', () => {
  const seen = new WatchedKeys([kv('/p/a', '1', 3), kv('/p/b', '1', 4), kv('/p/c', '1', 5)], 10);
  // Delivered before the gap: d appears, a is deleted.
  seen.apply({ type: 'put', kv: kv('/p/d', '1', 11) });
  seen.apply({ type: 'delete', kv: kv('/p/a', '', 12) });
  assert.equal(seen.revision, 12);

  // The listing after the gap: b changed, c gone, d unchanged, e new (written before b's change).
  const events = seen.catchUp([kv('/p/b', '2', 20), kv('/p/d', '1', 11), kv('/p/e', '1', 15)], 25);
  assert.deepEqual(
    events.map((e) => [e.type, e.kv.key, e.kv.modRevision, e.kv.value.toString()]),
    [
      ['put', '/p/e', 15, '1'],
      ['put', '/p/b', 20, '2'],
      ['delete', '/p/c', 25, ''],
    ],
  );

  // Once applied and advanced, the same listing yields nothing more.
  for (const event of events) seen.apply(event);
  seen.advance(25);
  assert.equal(seen.revision, 25);
  assert.deepEqual(seen.catchUp([kv('/p/b', '2', 20), kv('/p/d', '1', 11), kv('/p/e', '1', 15)], 30), []);
});

test('catch-up: a key deleted and created again in the gap is a put of its new value', () => {
  const seen = new WatchedKeys([kv('/leader', 'a', 7)], 7);
  assert.deepEqual(seen.catchUp([kv('/leader', 'b', 9)], 9).map((e) => [e.type, e.kv.value.toString(), e.kv.modRevision]), [['put', 'b', 9]]);
  assert.deepEqual(seen.catchUp([], 9).map((e) => [e.type, e.kv.key, e.kv.modRevision]), [['delete', '/leader', 9]]);
});
