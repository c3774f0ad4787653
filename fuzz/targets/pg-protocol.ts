// Fuzz target: the PostgreSQL protocol v3 byte level of
// src/streams/pg-wal/pg-protocol.ts, as both ends use it: the message
// framing state machine (startup phase without a type byte, SSLRequest
// answered and the startup expected again, as the walsender endpoint does;
// or typed messages, as the replication client reads them) fed arbitrary
// bytes in arbitrary splits, and the body parsers run on every message.
// Input: [mode, split seed, ...bytes]. Asserts: only ProtocolError is
// thrown; no message over the length limit; the same messages and verdict
// however the bytes were split (against a one-pass reference); parsed rows
// hold no more bytes than their message.

import {
  BodyReader,
  GSSENC_REQUEST_CODE,
  MessageDecoder,
  ProtocolError,
  SSL_REQUEST_CODE,
  parseDataRow,
  parseErrorFields,
  parseRowDescription,
  type PgMessage,
} from '../../src/streams/pg-wal/pg-protocol.ts';
import { check, splitPoints } from './fuzz-input.ts';

/** Length limits the mode byte picks from: the smallest legal, small, and the walsender's 1 MiB. */
const LIMITS = [8, 64, 1024 * 1024];

/** Jazzer entry point. */
export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const startup = (data[0] & 1) === 1;
  const maxLength = LIMITS[(data[0] >> 1) % LIMITS.length];
  const bytes = data.subarray(2);
  const expected = referenceDecode(bytes, startup, maxLength);

  // Split decode, reading every complete message after each chunk.
  const decoder = new MessageDecoder({ startup, maxLength });
  const messages: PgMessage[] = [];
  let refusal: string | undefined;
  let from = 0;
  for (const to of [...splitPoints(data[1], bytes.length), bytes.length]) {
    decoder.push(bytes.subarray(from, to));
    from = to;
    try {
      for (let m = decoder.next(); m; m = decoder.next()) {
        messages.push(m);
        if (m.type === '' && isEncryptionRequest(m.body)) decoder.expectStartup();
      }
    } catch (err) {
      check(err instanceof ProtocolError, `next threw ${(err as Error)?.name}: ${(err as Error)?.message}, not a ProtocolError`);
      refusal = (err as Error).message;
      break;
    }
  }

  // Same messages and verdict as the one-pass reading.
  check(messages.length === expected.messages.length, `split decode gave ${messages.length} messages, whole decode ${expected.messages.length}`);
  messages.forEach((m, i) => {
    const e = expected.messages[i];
    check(m.type === e.type && m.body.equals(e.body), `message ${i} differs between split and whole decode`);
    check(m.body.length + 4 <= maxLength, `message body of ${m.body.length} bytes with limit ${maxLength}`);
  });
  check((refusal !== undefined) === expected.refused, `split decode ${refusal ?? 'accepted'}, whole decode ${expected.refused ? 'refused' : 'accepted'}`);

  for (const m of messages) parseBody(m);
}

// An SSLRequest or GSSENCRequest startup packet (the endpoint answers 'N' and reads a startup again).
function isEncryptionRequest(body: Buffer): boolean {
  if (body.length !== 4) return false;
  const code = body.readInt32BE(0);
  return code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE;
}

// Runs the parsers that may meet this body; they may refuse only with ProtocolError.
function parseBody(m: PgMessage): void {
  const refusesCleanly = (what: string, parse: () => void) => {
    try {
      parse();
    } catch (err) {
      check(err instanceof ProtocolError, `${what} threw ${(err as Error)?.name}: ${(err as Error)?.message}, not a ProtocolError`);
    }
  };
  refusesCleanly('parseErrorFields', () => parseErrorFields(m.body));
  refusesCleanly('parseRowDescription', () => parseRowDescription(m.body));
  refusesCleanly('parseDataRow', () => {
    const values = parseDataRow(m.body);
    const held = values.reduce((sum, v) => sum + (v?.length ?? 0), 0);
    check(held <= m.body.length, `data row of ${m.body.length} bytes parsed into ${held} bytes of values`);
  });
  // The walsender's startup packet: protocol code, then name/value pairs.
  refusesCleanly('startup parameters', () => {
    const r = new BodyReader(m.body);
    r.int32();
    while (r.remaining > 1) {
      r.cstring();
      r.cstring();
    }
  });
  // Every fixed-width read the server and client use, in turn.
  refusesCleanly('field reads', () => {
    const r = new BodyReader(m.body);
    r.byte();
    r.int16();
    r.uint64();
    r.bytes(r.int32());
    r.rest();
  });
}

// The framing rules read straight off the protocol, over one buffer.
function referenceDecode(bytes: Buffer, startup: boolean, maxLength: number): { messages: PgMessage[]; refused: boolean } {
  const messages: PgMessage[] = [];
  let at = 0;
  for (;;) {
    const headerLength = startup ? 4 : 5;
    if (bytes.length - at < headerLength) return { messages, refused: false };
    const length = bytes.readUInt32BE(at + headerLength - 4);
    if (length < (startup ? 8 : 4) || length > maxLength) return { messages, refused: true };
    const total = length + (startup ? 0 : 1);
    if (bytes.length - at < total) return { messages, refused: false };
    const m = { type: startup ? '' : String.fromCharCode(bytes[at]), body: bytes.subarray(at + headerLength, at + total) };
    messages.push(m);
    startup = m.type === '' && isEncryptionRequest(m.body);
    at += total;
  }
}
