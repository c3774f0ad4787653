// What goes to an HDE worker by copy is only the bytes of the view, not the
// buffer around it: structured clone copies a view's whole ArrayBuffer, and
// Node keeps small buffers in 64 KiB slabs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compactView } from '../../src/encoding/hde-pool.ts';
import { HdePool } from '../../src/encoding/hde-pool.ts';

test('a view of a bigger buffer is copied to a buffer of its own size; a whole or moved buffer is kept', () => {
  const slab = new ArrayBuffer(64 * 1024);
  const view = new Uint8Array(slab, 100, 300).fill(7);
  const compact = compactView(view, []);
  assert.equal(compact.buffer.byteLength, 300);
  assert.deepEqual(Buffer.from(compact), Buffer.from(view));
  // Moved with the message, or already whole: no copy.
  assert.equal(compactView(view, [slab]), view);
  const whole = new Uint8Array(300);
  assert.equal(compactView(whole, []), whole);
});

test('the pool codes frames whose meta and data sit in shared slabs, and leaves the caller\'s slab intact', async () => {
  const pool = new HdePool(1);
  try {
    const slab = Buffer.alloc(64 * 1024, 1);
    const meta = slab.subarray(0, 16);
    const data = slab.subarray(16, 16 + 40_000);
    const enc = await pool.encodeStream('k', meta, data, 3, true);
    const dec = await pool.decodeStream('k2', meta, enc.payload, data.length, true);
    assert.deepEqual(dec.data, Buffer.alloc(40_000, 1));
    assert.deepEqual(dec.digest, enc.digest);
    assert.equal(slab.length, 64 * 1024, 'the shared slab was moved away from the caller');
  } finally {
    await pool.close();
  }
});
