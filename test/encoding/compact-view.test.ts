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

test('a large copy moves with the post; the view it was taken from stays the caller\'s', () => {
  const socketChunk = new ArrayBuffer(256 * 1024);
  const view = new Uint8Array(socketChunk, 30, 128 * 1024).fill(9);
  const transfer: ArrayBuffer[] = [];
  const compact = compactView(view, transfer);
  assert.deepEqual(transfer, [compact.buffer], 'a copy of 128 KiB should move, not be cloned again');
  assert.notEqual(compact.buffer, socketChunk);
  // Posting it detaches only the copy.
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(compact, transfer);
  port1.close();
  port2.close();
  assert.equal(compact.byteLength, 0);
  assert.equal(view.byteLength, 128 * 1024);
  assert.equal(view[0], 9);
  // A small copy is cloned (moving it saves nothing).
  const small: ArrayBuffer[] = [];
  compactView(new Uint8Array(socketChunk, 0, 300), small);
  assert.deepEqual(small, []);
});

test('the pool codes a large frame that sits inside a bigger buffer and leaves that buffer intact', async () => {
  const pool = new HdePool(1);
  try {
    const chunk = Buffer.alloc(300 * 1024, 5);
    const data = chunk.subarray(30, 30 + 200 * 1024);
    const enc = await pool.encodeStream('big', chunk.subarray(0, 8), data, 3, true);
    const dec = await pool.decodeStream('big2', chunk.subarray(0, 8), enc.payload, data.length, true);
    assert.deepEqual(dec.data, Buffer.alloc(200 * 1024, 5));
    assert.deepEqual(dec.digest, enc.digest);
    assert.equal(chunk.length, 300 * 1024);
    assert.equal(data.length, 200 * 1024, 'the caller\'s view was moved away');
  } finally {
    await pool.close();
  }
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
