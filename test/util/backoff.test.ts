// The one backoff: doubles from initialMs up to maxMs, jitter takes up to
// half of each delay away, reset starts over, nonsense options are refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, retryAtStart } from '../../src/util/backoff.ts';

test('backoff doubles up to its cap and starts over on reset', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
  assert.equal(b.attempts, 6);
  b.reset();
  assert.equal(b.attempts, 0);
  assert.equal(b.next(), 100);
});

test('backoff jitter stays within [d/2, d]', () => {
  const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
  assert.deepEqual([low.next(), low.next(), low.next(), low.next(), low.next()], [50, 100, 200, 400, 500]);
  const real = new Backoff({ initialMs: 1000, maxMs: 1000 });
  for (let i = 0; i < 100; i++) {
    const d = real.next();
    assert.ok(d >= 500 && d <= 1000, `delay ${d}`);
  }
});

test('backoff refuses options that cannot work, naming them', () => {
  assert.throws(() => new Backoff({ initialMs: 0, maxMs: 10 }), /need 0 < initialMs <= maxMs, got initialMs 0 and maxMs 10/);
  assert.throws(() => new Backoff({ initialMs: 20, maxMs: 10 }), /initialMs 20 and maxMs 10/);
});

test('retryAtStart retries a failing start step with backoff and gives up naming it and the last error', async () => {
  let calls = 0;
  const retries: number[] = [];
  const value = await retryAtStart(async () => {
    if (++calls < 3) throw new Error(`etcd call ${calls} timed out`);
    return 'open';
  }, { what: 'member view', timeoutMs: 1_000, initialMs: 5, maxMs: 10, onRetry: (_err, delayMs) => retries.push(delayMs) });
  assert.equal(value, 'open');
  assert.equal(calls, 3);
  assert.equal(retries.length, 2);

  await assert.rejects(
    retryAtStart(async () => {
      throw new Error('no quorum');
    }, { what: 'register member', timeoutMs: 50, initialMs: 10, maxMs: 20, onRetry: () => {} }),
    /^Error: register member: gave up after 50 ms: no quorum$/,
  );
});
