// The sender's chunk-query side channel: answers are matched by query id
// and checked against the question, and a question never hangs: the session
// ending, a failed send or a peer that stays quiet each reject it (the
// source then sends the file whole).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkQueries } from '../../src/agent/chunk-queries.ts';
import { missingBitmap } from '../../src/wire/dedup-messages.ts';
import type { ChunkQuery } from '../../src/wire/messages.ts';

const query = (queryId: number, count: number): ChunkQuery => ({ streamId: 's', queryId, path: 'f', hashes: Buffer.alloc(32 * count, queryId) });

test('answers resolve their own question; a malformed answer rejects it; late answers are ignored', async () => {
  const sent: ChunkQuery[] = [];
  const queries = new ChunkQueries((q) => sent.push(q) > 0);
  const first = queries.ask(query(1, 3));
  const second = queries.ask(query(2, 9));
  assert.deepEqual(sent.map((q) => q.queryId), [1, 2]);

  // Out of order, each to its own question.
  queries.answer({ streamId: 's', queryId: 2, count: 9, missing: missingBitmap(Array(9).fill(true)), refusal: '' });
  queries.answer({ streamId: 's', queryId: 1, count: 3, missing: missingBitmap([false, true, false]), refusal: '' });
  assert.equal((await second).count, 9);
  assert.deepEqual([...(await first).missing], [0b010]);

  // An answer whose bitmap does not fit the question is refused, not used.
  const third = queries.ask(query(3, 2));
  queries.answer({ streamId: 's', queryId: 3, count: 5, missing: Buffer.alloc(1), refusal: '' });
  await assert.rejects(third, /count 5, the query asked 2/);
  queries.answer({ streamId: 's', queryId: 3, count: 2, missing: Buffer.alloc(1), refusal: '' });
});

test('a question is rejected when the session ends, when it cannot be sent, or when no answer comes in time', async () => {
  const queries = new ChunkQueries(() => true, 50);
  const quiet = queries.ask(query(1, 1));
  await assert.rejects(quiet, /no answer within 50 ms/);

  const open = queries.ask(query(2, 1));
  queries.close(new Error('session ended'));
  await assert.rejects(open, /session ended/);
  await assert.rejects(queries.ask(query(3, 1)), /session ended/);

  await assert.rejects(new ChunkQueries(() => false).ask(query(4, 1)), /no carrier/);
});
