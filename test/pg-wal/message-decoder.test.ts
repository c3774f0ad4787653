// The PostgreSQL message decoder over socket reads of any size: every
// message comes out whole and in order however the reads cut it, and a
// message that spans reads is copied once into a buffer of its own size
// (not joined with the reads after it, which the next message would copy
// again; a 128 KiB XLogData over 64 KiB reads is the common case).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageDecoder, message } from '../../src/streams/pg-wal/pg-protocol.ts';

/** Three messages back to back: a small one, a 128 KiB one, a small one. */
function stream(): { bytes: Buffer; bodies: Array<{ type: string; body: Buffer }> } {
  const big = Buffer.alloc(128 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const bodies = [
    { type: 'k', body: Buffer.from('keepalive') },
    { type: 'd', body: big },
    { type: 'Z', body: Buffer.from('I') },
  ];
  return { bytes: Buffer.concat(bodies.map((m) => message(m.type, m.body))), bodies };
}

function decodeAll(bytes: Buffer, readSize: number): Array<{ type: string; body: Buffer }> {
  const decoder = new MessageDecoder({ startup: false, maxLength: 1024 * 1024 });
  const out: Array<{ type: string; body: Buffer }> = [];
  for (let at = 0; at < bytes.length; at += readSize) {
    // Each read a buffer of its own, as a socket delivers them.
    decoder.push(Buffer.from(bytes.subarray(at, at + readSize)));
    for (let m = decoder.next(); m; m = decoder.next()) out.push(m);
  }
  assert.equal(decoder.buffered, 0);
  return out;
}

test('messages come out whole and in order whatever the read size', () => {
  const { bytes, bodies } = stream();
  for (const readSize of [3, 5, 7, 4096, 65536, 65537, bytes.length]) {
    const got = decodeAll(bytes, readSize);
    assert.deepEqual(got.map((m) => m.type), bodies.map((m) => m.type), `read size ${readSize}`);
    got.forEach((m, i) => assert.ok(m.body.equals(bodies[i].body), `read size ${readSize}: body of message ${i}`));
  }
});

test('a message spanning reads sits in a buffer of exactly its size', () => {
  const { bytes } = stream();
  const big = decodeAll(bytes, 65536)[1];
  // Its type byte and length (5 bytes) and its body, nothing of the next message.
  assert.equal(big.body.buffer.byteLength, 5 + 128 * 1024);
  assert.equal(big.body.byteOffset, 5);
});
