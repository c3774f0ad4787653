// Delivery acknowledgements: the capability, the coalescing of reports and
// the ranges they carry, and the wire encoding of Delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DELIVERED_FLUSH_FRAMES, DeliveryAcker, deliveredRanges, deliveryCapability, peerHoldBytes } from '../../src/transport/delivery-acks.ts';
import { envelopeCodec, type Delivered } from '../../src/wire/messages.ts';

test('the capability announces the hold, and a peer without it has none', () => {
  assert.equal(peerHoldBytes(['objects', deliveryCapability(128 * 1024 * 1024), 'hde:cdc@1']), 128 * 1024 * 1024);
  assert.equal(peerHoldBytes(['objects', 'zstd']), null);
  assert.equal(peerHoldBytes(['amst:delivered@1;hold=-5', 'amst:delivered@2;hold=9', 'amst:delivered@1;hold=1e9']), null, 'malformed entries are ignored');
});

test('reports are coalesced into ranges: one message for many frames, never one per frame', async () => {
  const sent: Delivered[] = [];
  const acker = new DeliveryAcker((d) => sent.push(d));
  // A burst of in-order frames with a gap, on two streams, below the flush count.
  for (const seq of [1, 2, 3, 5, 6, 4]) acker.add('a', seq);
  acker.add('b', 9);
  assert.equal(sent.length, 0, 'nothing sent synchronously below the flush count');
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (sent.length > 0) {
        clearInterval(poll);
        resolve();
      }
    }, 2);
  });
  assert.equal(sent.length, 1);
  const ranges = [...deliveredRanges(sent[0])];
  assert.deepEqual(ranges, [
    { streamId: 'a', first: 1, last: 3 },
    { streamId: 'a', first: 4, last: 6 },
    { streamId: 'b', first: 9, last: 9 },
  ]);
  // A long in-order run flushes at the frame count, as one range.
  for (let seq = 100; seq < 100 + DELIVERED_FLUSH_FRAMES; seq++) acker.add('a', seq);
  assert.equal(sent.length, 2);
  assert.deepEqual([...deliveredRanges(sent[1])], [{ streamId: 'a', first: 100, last: 100 + DELIVERED_FLUSH_FRAMES - 1 }]);
  acker.add('a', 7);
  acker.stop();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(sent.length, 2, 'a stopped acker sends nothing');
});

test('Delivered round-trips through the envelope codec; malformed ranges are skipped', () => {
  const delivered: Delivered = { streams: [{ streamId: 's', first: [1, 10, 7], last: [4, 12, 3] }, { streamId: 't', first: [5, 6], last: [5] }] };
  const decoded = envelopeCodec.decode(envelopeCodec.encode({ delivered })).delivered!;
  assert.deepEqual([...deliveredRanges(decoded)], [
    { streamId: 's', first: 1, last: 4 },
    { streamId: 's', first: 10, last: 12 },
    { streamId: 't', first: 5, last: 5 },
  ]);
});
