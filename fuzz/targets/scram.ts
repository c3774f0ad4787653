// Fuzz target: the server half of SCRAM-SHA-256 (src/streams/pg-wal/scram.ts),
// which parses what an unauthenticated client sends: client-first-message,
// then client-final-message. Input: the two messages separated by one NUL.
// The server's nonce is random, so in the client-final-message "%n" stands
// for it, "%c" for the channel binding the server expects (base64 of the
// gs2 header), and a trailing ",p=%p" for the proof a password holder would
// send: that keeps every check of final() reachable. Asserts what the
// server promises: it refuses with an Error (the walsender turns any into
// "authentication failed"); its server-first-message is well formed (a
// nonce without commas, the salt, the iterations); it accepts a client-final-message only with
// the proof made from the password (computed here independently), and
// accepts the standard one ("c=%c,r=%n,p=%p").

import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { ScramServer, scramSecret } from '../../src/streams/pg-wal/scram.ts';
import { check } from './fuzz-input.ts';

/** The password the server holds; seeds are made with it. */
export const SCRAM_FUZZ_PASSWORD = 'fuzz-password';
/** Derived once: PBKDF2 is the slow part of an exchange. */
const SECRET = await scramSecret(SCRAM_FUZZ_PASSWORD);
const SALTED = pbkdf2Sync(SCRAM_FUZZ_PASSWORD, SECRET.salt, SECRET.iterations, 32, 'sha256');
const CLIENT_KEY = createHmac('sha256', SALTED).update('Client Key').digest();

/** Jazzer entry point. */
export function fuzz(data: Buffer): void {
  const text = data.toString('utf8');
  const split = text.indexOf('\0');
  const clientFirst = split < 0 ? text : text.slice(0, split);
  const clientFinal = split < 0 ? undefined : text.slice(split + 1);

  // client-first-message: a refusal or a well-formed answer.
  const server = new ScramServer(SECRET);
  let serverFirst: string;
  try {
    serverFirst = server.first(clientFirst);
  } catch (err) {
    check(err instanceof Error, `first threw a non-Error: ${String(err)}`);
    return;
  }
  const answer = /^r=([^,]+),s=[A-Za-z0-9+/]+={0,2},i=[1-9]\d*$/.exec(serverFirst);
  check(answer !== null, `server-first-message is malformed: ${JSON.stringify(serverFirst.slice(0, 200))}`);
  const nonce = answer[1];
  if (clientFinal === undefined) return;

  // client-final-message: fill in the placeholders, then it is accepted only with the genuine proof.
  const bare = clientFirst.slice(clientFirst.indexOf(',', clientFirst.indexOf(',') + 1) + 1);
  const gs2Header = clientFirst.slice(0, clientFirst.length - bare.length);
  let final = clientFinal.replaceAll('%n', nonce).replaceAll('%c', Buffer.from(gs2Header).toString('base64'));
  if (final.endsWith(',p=%p')) final = final.slice(0, -2) + genuineProof(`${bare},${serverFirst},${final.slice(0, -',p=%p'.length)}`).toString('base64');
  let serverFinal: string;
  try {
    serverFinal = server.final(final);
  } catch (err) {
    check(err instanceof Error, `final threw a non-Error: ${String(err)}`);
    check(clientFinal !== 'c=%c,r=%n,p=%p', `final refused a genuine exchange: ${(err as Error).message}`);
    return;
  }
  const proofAt = final.lastIndexOf(',p=');
  const sentProof = Buffer.from(final.slice(proofAt + 3), 'base64');
  check(sentProof.equals(genuineProof(`${bare},${serverFirst},${final.slice(0, proofAt)}`)), `server accepted a proof not made from the password: ${JSON.stringify(final.slice(0, 200))}`);
  check(serverFinal.startsWith('v='), `server-final-message is malformed: ${JSON.stringify(serverFinal.slice(0, 200))}`);
}

// ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage) (RFC 5802 section 3).
function genuineProof(authMessage: string): Buffer {
  const signature = createHmac('sha256', createHash('sha256').update(CLIENT_KEY).digest()).update(authMessage).digest();
  const proof = Buffer.alloc(CLIENT_KEY.length);
  for (let i = 0; i < proof.length; i++) proof[i] = CLIENT_KEY[i] ^ signature[i];
  return proof;
}
