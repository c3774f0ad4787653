// The sender's side channel of stage dedup@1: a source asks the destination
// which chunks of a file it lacks (ChunkQuery), and the answer (ChunkHave)
// comes back among the link's control messages, matched by query id. One
// instance per stream session: when the session ends every open question is
// rejected, and a question unanswered within the timeout is rejected too, so
// a source never waits on a peer that went quiet (it sends the file whole).

import { CHUNK_HASH_BYTES, checkChunkHave } from '../wire/dedup-messages.ts';
import type { ChunkHave, ChunkQuery } from '../wire/messages.ts';

/** Longest wait for a ChunkHave, ms (the destination answers from its index, off the ordered path). */
export const CHUNK_QUERY_TIMEOUT_MS = 30_000;

/** Most questions open at once per session (a source asks one file at a time; this bounds a misbehaving one). */
export const MAX_OPEN_CHUNK_QUERIES = 64;

interface OpenQuery {
  count: number;
  resolve: (have: ChunkHave) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Open chunk queries of one stream session. */
export class ChunkQueries {
  readonly #send: (query: ChunkQuery) => boolean;
  readonly #timeoutMs: number;
  readonly #open = new Map<number, OpenQuery>();
  #closed: Error | null = null;

  /** send puts a ChunkQuery on the link; false when no carrier is up. */
  constructor(send: (query: ChunkQuery) => boolean, timeoutMs = CHUNK_QUERY_TIMEOUT_MS) {
    this.#send = send;
    this.#timeoutMs = timeoutMs;
  }

  /** Ask; resolves with the checked answer, rejects when the session ends, the send fails or no answer comes in time. */
  ask(query: ChunkQuery): Promise<ChunkHave> {
    return new Promise<ChunkHave>((resolve, reject) => {
      if (this.#closed) return reject(this.#closed);
      if (this.#open.has(query.queryId)) return reject(new Error(`chunk query ${query.queryId}: already open`));
      if (this.#open.size >= MAX_OPEN_CHUNK_QUERIES) return reject(new Error(`chunk query ${query.queryId}: ${MAX_OPEN_CHUNK_QUERIES} queries open already`));
      const timer = setTimeout(() => this.#settle(query.queryId, new Error(`chunk query ${query.queryId}: no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      timer.unref();
      this.#open.set(query.queryId, { count: query.hashes.length / CHUNK_HASH_BYTES, resolve, reject, timer });
      if (!this.#send(query)) this.#settle(query.queryId, new Error(`chunk query ${query.queryId}: no carrier to send it on`));
    });
  }

  /** An answer from the destination; one to no open question is ignored (late, after a timeout). */
  answer(have: ChunkHave): void {
    const open = this.#open.get(have.queryId);
    if (!open) return;
    try {
      this.#settle(have.queryId, checkChunkHave(have, open.count));
    } catch (err) {
      this.#settle(have.queryId, err as Error);
    }
  }

  /** The session ended: reject every open question, and every later one. */
  close(reason: Error): void {
    this.#closed = reason;
    for (const id of [...this.#open.keys()]) this.#settle(id, reason);
  }

  #settle(queryId: number, outcome: ChunkHave | Error): void {
    const open = this.#open.get(queryId);
    if (!open) return;
    this.#open.delete(queryId);
    clearTimeout(open.timer);
    if (outcome instanceof Error) open.reject(outcome);
    else open.resolve(outcome);
  }
}
