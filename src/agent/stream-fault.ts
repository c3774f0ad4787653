// Faults of one stream: what an error of a source, sink or resume check
// means for that stream. A SinkError is the sink refusing the data: the
// stream halts until an operator acts. Any other error (ENOSPC, EIO, EAGAIN,
// EMFILE, EACCES, ...) may pass: the stream stops its session and retries
// with backoff. Either way only that stream stops, never the agent.

import { SinkError } from '../streams/stream.ts';

/** How deep fault classification follows an error's cause chain. */
const MAX_CAUSE_DEPTH = 8;

/** Error code a sender and receiver use for a fault whose cause may pass (the sender retries the session with backoff). */
export const STREAM_FAULT_CODE = 'STREAM_FAULT';

/** True when the error is a refusal of the data (halt until an operator acts), false when its cause may pass (retry). */
export function isRefusal(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < MAX_CAUSE_DEPTH; e = e.cause, depth++) {
    if (e instanceof SinkError) return true;
  }
  return false;
}

/**
 * A short, bounded label for a fault (the metric's reason): the errno code
 * (ENOSPC, EIO, ...) found on the error or its causes, else "error".
 */
export function faultCode(err: unknown): string {
  for (let e = err, depth = 0; e instanceof Error && depth < MAX_CAUSE_DEPTH; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z0-9]{1,15}$/.test(code)) return code;
  }
  return 'error';
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
