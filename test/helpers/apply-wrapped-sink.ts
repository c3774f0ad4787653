// A sink that forwards everything to a real one but runs each apply through
// the test's own function (to gate, count or look at ops; fault injection
// passed in by the test, never read from the environment).

import type { Sink } from '../../src/streams/stream.ts';

/** inner with its apply replaced by apply(innerApply, seq, meta, data). */
export function applyWrappedSink(inner: Sink, apply: (innerApply: Sink['apply'], seq: number, meta: Uint8Array, data: Uint8Array) => Promise<void>): Sink {
  const innerApply: Sink['apply'] = (seq, meta, data) => inner.apply(seq, meta, data);
  return {
    streamId: inner.streamId,
    kind: inner.kind,
    recover: (state, seq) => inner.recover(state, seq),
    apply: (seq, meta, data) => apply(innerApply, seq, meta, data),
    flush: () => inner.flush(),
    committed: inner.committed ? (seq, state) => inner.committed!(seq, state) : undefined,
    chunkHave: inner.chunkHave ? (query) => inner.chunkHave!(query) : undefined,
    close: () => inner.close(),
  };
}
