// Test helpers for the walsender endpoint: the WalRecord meta of a run of
// WAL bytes, and the XLogData messages a replication client receives.

import { walRecordCodec } from '../../src/wire/messages.ts';
import { BodyReader } from '../../src/streams/pg-wal/pg-protocol.ts';
import type { ReplicationClient } from '../../src/streams/pg-wal/replication-client.ts';

/** WalRecord meta of WAL bytes starting at startLsn on timeline 1. */
export function dataMeta(startLsn: number): Uint8Array {
  return walRecordCodec.encode({ data: { timeline: 1, startLsn, serverWalEnd: startLsn, serverTime: 0 } });
}

/** One XLogData message: where its bytes start, how many, and the server's WAL end it announced. */
export interface XLogDataMessage {
  start: number;
  end: number;
  walEnd: number;
}

/** XLogData messages until one ends at or past end. */
export async function streamUntil(client: ReplicationClient, end: number): Promise<XLogDataMessage[]> {
  const out: XLogDataMessage[] = [];
  for (;;) {
    const event = await client.readCopy();
    if (event.kind !== 'data') continue;
    const r = new BodyReader(event.payload);
    if (String.fromCharCode(r.byte()) !== 'w') continue;
    const start = r.uint64();
    const walEnd = r.uint64();
    r.uint64();
    const message = { start, end: start + r.rest().length, walEnd };
    out.push(message);
    if (message.end >= end) return out;
  }
}
