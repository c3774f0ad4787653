// Fuzz target: the walsender-compatible endpoint
// (src/streams/pg-wal/walsender-server.ts) as a client reaches it: a real
// server on loopback serving a real spool (two timelines), one TCP
// connection per input that sends the input and a Terminate. This covers
// what only the endpoint parses: startup packets, SSL/GSS requests, the
// SASL messages, replication commands and standby feedback.
// Input: [mode, ...client bytes]; mode bit 0 connects from a trusted
// address (127.0.0.2, no password), else from 127.0.0.1 (SCRAM required).
// Asserts: the process survives (an escaped rejection is a finding); the
// answer is well-formed protocol (SSL 'N' bytes, then whole typed messages
// of the kinds the endpoint sends); no ErrorResponse is an internal error
// (SQLSTATE XX000: something threw that the endpoint did not mean to);
// without trust, nothing but authentication requests and an error is ever
// sent (the fuzzer does not know the password); and the connection closes.

import { mkdtempSync, rmSync } from 'node:fs';
import { Server, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatLsn } from '../../src/streams/pg-wal/lsn.ts';
import { MessageDecoder, ProtocolError, parseErrorFields, terminate, type PgMessage } from '../../src/streams/pg-wal/pg-protocol.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { startWalsenderServer } from '../../src/streams/pg-wal/walsender-server.ts';
import { walRecordCodec } from '../../src/wire/messages.ts';
import { check } from './fuzz-input.ts';

/** Addresses a client connects from: the trusted one, and one that must authenticate. */
const TRUSTED_ADDRESS = '127.0.0.2';
const UNTRUSTED_ADDRESS = '127.0.0.1';
/** Silence from the server after which the client half-closes, ms. */
const QUIET_MS = 250;
/** Time one connection may stay open after the client half-closed, ms: longer is a hang. */
const CLOSE_TIMEOUT_MS = 5_000;
/** Message types the endpoint sends. */
const SERVER_TYPES = new Set(['R', 'S', 'K', 'Z', 'T', 'D', 'C', 'E', 'W', 'd', 'c', 'I']);
/** Authentication requests before a password is proven: SASL (10) and SASLContinue (11). */
const PRE_AUTH_CODES = new Set([10, 11]);
/** Largest backend message the answer may hold (a CopyData of 16 WAL pages plus headers), bytes. */
const MAX_ANSWER_MESSAGE_BYTES = 1024 * 1024;
const MiB = 1024 * 1024;

/** The system the spool's WAL comes from; seeds use its LSNs. */
export const WALSENDER_FUZZ_SYSTEM = { systemId: '7322222222222222222', timeline: 1, walSegmentSize: MiB, serverVersion: 150013 };
/** Timeline 1 runs from 0/200000 to the switch at 0/210000, timeline 2 from there for 64 KiB. */
export const WALSENDER_FUZZ_SWITCH_LSN = 2 * MiB + 64 * 1024;

// The spool and the server, once per process.
const spoolDir = mkdtempSync(join(tmpdir(), 'dwcp-fuzz-spool-'));
const sink = new WalSink({ streamId: 'fuzz', spoolDir });
await sink.recover(new Uint8Array(0), 0);
await sink.apply(1, walRecordCodec.encode({ system: WALSENDER_FUZZ_SYSTEM }), new Uint8Array(0));
await sink.apply(2, walRecordCodec.encode({ data: { timeline: 1, startLsn: 2 * MiB, serverWalEnd: 2 * MiB, serverTime: 0 } }), Buffer.alloc(64 * 1024, 1));
const history = Buffer.from(`1\t${formatLsn(WALSENDER_FUZZ_SWITCH_LSN)}\tno recovery target specified\n`);
await sink.apply(3, walRecordCodec.encode({ history: { timeline: 2, fileName: '00000002.history' } }), history);
await sink.apply(4, walRecordCodec.encode({ data: { timeline: 2, startLsn: WALSENDER_FUZZ_SWITCH_LSN, serverWalEnd: WALSENDER_FUZZ_SWITCH_LSN, serverTime: 0 } }), Buffer.alloc(64 * 1024, 2));
await sink.flush();
await sink.close();
const server = await startWalsenderServer({
  spool: spoolDir,
  host: UNTRUSTED_ADDRESS,
  port: 0,
  auth: { users: { standby: 'walsender-fuzz-password' }, trustCidrs: [`${TRUSTED_ADDRESS}/32`] },
});
// jazzer's CLI ends a run without a finding by letting the event loop
// drain; the listening server would keep it alive forever. The endpoint
// does not expose its net.Server, so find it among the process's handles.
const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
for (const handle of handles) {
  if (handle instanceof Server && (handle.address() as { port?: number } | null)?.port === server.port) handle.unref();
}
process.once('exit', () => rmSync(spoolDir, { recursive: true, force: true }));

/** Jazzer entry point. */
export async function fuzz(data: Buffer): Promise<void> {
  if (data.length < 1) return;
  const trusted = (data[0] & 1) === 1;
  const answer = await converse(data.subarray(1), trusted ? TRUSTED_ADDRESS : UNTRUSTED_ADDRESS);
  const messages = parseAnswer(answer);
  for (const m of messages) {
    if (m.type === 'E') {
      const fields = parseErrorFields(m.body);
      check(fields.code !== 'XX000', `internal error answered: ${fields.message}`);
    }
    if (!trusted) {
      check(m.type === 'R' || m.type === 'E', `sent "${m.type}" to a client that never authenticated`);
      if (m.type === 'R') check(m.body.length >= 4 && PRE_AUTH_CODES.has(m.body.readInt32BE(0)), `sent authentication code ${m.body.length >= 4 ? m.body.readInt32BE(0) : '?'} to a client that never proved the password`);
    }
  }
}

// One connection: send the input and a Terminate, half-close once the
// server has been quiet a moment, collect the answer until it closes. (Not
// at once: the endpoint's sockets end their writing side when the client's
// FIN arrives, so an immediate half-close cuts answers off; a quiet period
// that is too short on a slow machine only shortens what gets checked.)
function converse(input: Buffer, localAddress: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: UNTRUSTED_ADDRESS, port: server.port, localAddress });
    const chunks: Buffer[] = [];
    let closeTimer: NodeJS.Timeout | undefined;
    const halfClose = () => {
      socket.end();
      closeTimer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`walsender kept the connection open ${CLOSE_TIMEOUT_MS} ms after the client half-closed`));
      }, CLOSE_TIMEOUT_MS);
    };
    let quietTimer = setTimeout(halfClose, QUIET_MS);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (closeTimer) return;
      clearTimeout(quietTimer);
      quietTimer = setTimeout(halfClose, QUIET_MS);
    });
    // A reset (the server closing with our bytes unread) ends the answer like a close.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(quietTimer);
      clearTimeout(closeTimer);
      resolve(Buffer.concat(chunks));
    });
    socket.write(Buffer.concat([input, terminate()]));
  });
}

// SSL/GSS refusals ('N'), then typed messages; the last one may be cut off by the close.
function parseAnswer(answer: Buffer): PgMessage[] {
  let at = 0;
  while (at < answer.length && answer[at] === 0x4e) at++;
  const decoder = new MessageDecoder({ startup: false, maxLength: MAX_ANSWER_MESSAGE_BYTES });
  decoder.push(answer.subarray(at));
  const messages: PgMessage[] = [];
  try {
    for (let m = decoder.next(); m; m = decoder.next()) {
      check(SERVER_TYPES.has(m.type), `answered with message type ${JSON.stringify(m.type)}`);
      messages.push(m);
    }
  } catch (err) {
    if (err instanceof ProtocolError) check(false, `answer is not valid protocol: ${err.message}`);
    throw err;
  }
  return messages;
}
