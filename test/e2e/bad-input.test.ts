// Bad input at the agent's carrier port: garbage, a truncated frame, a 4 GiB
// length prefix, a wrong protocol version or federation, a certificate from
// another CA, and a federation member that lies (a path escaping the sink).
// Each is refused with a logged reason; the agent keeps serving and its
// memory stays bounded.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { type TwoRegion } from '../../src/cli/two-region.ts';
import { createDevPki } from '../../src/cli/dev-pki.ts';
import { dialCarrier, type TlsMaterial } from '../../src/transport/tls-transport.ts';
import { frameBytes } from '../../src/wire/frame-decoder.ts';
import { envelopeCodec, objectOpCodec, PROTOCOL_VERSION, type Envelope } from '../../src/wire/messages.ts';
import { frameDigest } from '../../src/encoding/digest.ts';
import { startLoneDestination, type LoneDestination } from '../helpers/lone-destination.ts';
import { type AgentProcess, waitFor, sleep } from '../helpers/agent-process.ts';

let dir: string;
let setup: TwoRegion;
let dest: AgentProcess;
let member: TlsMaterial;
let lone: LoneDestination;

before(async () => {
  lone = await startLoneDestination('dwcp-bad-');
  ({ dir, setup, dest, member } = lone);
});

after(async () => {
  await lone.close();
});

/** Open a TLS connection as a federation member, send raw bytes, wait for the agent to close it. */
async function sendRaw(bytes: Buffer[], material: TlsMaterial = member): Promise<{ closed: boolean; received: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: setup.ports.dest, ...material, checkServerIdentity: () => undefined });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closed: false, received: Buffer.concat(chunks) });
    }, 5000);
    socket.on('secureConnect', () => {
      for (const b of bytes) socket.write(b);
    });
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      resolve({ closed: true, received: Buffer.concat(chunks), error: err.message });
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, received: Buffer.concat(chunks) });
    });
  });
}

function hello(overrides: Partial<NonNullable<Envelope['hello']>> = {}): Buffer {
  return frameBytes(envelopeCodec.encode({ hello: { protocolVersion: PROTOCOL_VERSION, federation: 'demo', region: 'eu-west', nodeId: 'eu-west-node-1', capabilities: [], linkId: 'bad-input', carrierIndex: 0, ...overrides } }));
}

/** Wait for a log line with this message that matches pattern (pino puts msg last). */
async function logged(pattern: RegExp, msg = 'connection refused'): Promise<void> {
  await waitFor(`a "${msg}" log line matching ${pattern}`, async () => dest.logs.some((l) => l.includes(`"msg":"${msg}"`) && pattern.test(l)), 5000, 50);
}

test('garbage bytes are refused with a logged reason', async () => {
  const r = await sendRaw([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
  assert.ok(r.closed, 'connection closed');
  await logged(/malformed frame: frame length 1195725856 exceeds maximum/);
});

test('a 4 GiB length prefix is refused before buffering', async () => {
  const r = await sendRaw([Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(1000)]);
  assert.ok(r.closed);
  await logged(/4294967295 exceeds maximum/);
});

test('a truncated frame is dropped with the connection', async () => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(1000);
  const r = await sendRaw([len, Buffer.alloc(10)]);
  assert.equal(r.closed, false, 'the agent waits for the rest of the frame (until its handshake timeout), it does not crash');
  assert.equal((await fetch(`http://127.0.0.1:${setup.ports.destHttp}/healthz`)).status, 200);
});

test('a wrong protocol version is refused with a message naming both versions', async () => {
  const r = await sendRaw([hello({ protocolVersion: 99 })]);
  const reply = envelopeCodec.decode(r.received.subarray(4)).helloReply;
  assert.equal(reply?.accepted, false);
  assert.match(reply!.refusal, /protocol version 99 is not supported \(this agent speaks 1\)/);
  await logged(/handshake refused: protocol version 99/);
});

test('a wrong federation is refused', async () => {
  const r = await sendRaw([hello({ federation: 'other' })]);
  assert.match(envelopeCodec.decode(r.received.subarray(4)).helloReply!.refusal, /federation "other" does not match/);
});

test('a peer with a certificate from another CA is refused at TLS', async () => {
  const other = await createDevPki(join(dir, 'other-ca'), { intruder: { federation: 'demo', region: 'eu-west', node: 'eu-west-node-1' } }, 'other-ca');
  const o = other.intruder;
  const r = await sendRaw([hello()], { ca: readFileSync(o.caFile), cert: readFileSync(o.certFile), key: readFileSync(o.keyFile) });
  assert.ok(r.closed);
  assert.equal(r.received.length, 0, 'nothing answered to an unknown CA');
  await logged(/"reason":"tls: /);
});

// The liar holds the source region's own certificate (a compromised eu-west
// agent): identity checks let it in, the sink's confinement must still hold.
test('a member that lies (path escaping the sink) halts the stream and writes nothing outside', async () => {
  const { carrier } = await dialCarrier({ host: '127.0.0.1', port: setup.ports.dest, tls: member, identity: { federation: 'demo', region: 'eu-west', nodeId: 'eu-west-node-1', capabilities: [] }, peerRegion: 'us-east', linkId: 'liar-link', index: 0, maxFrameBytes: 1 << 20 });
  const got: Envelope[] = [];
  carrier.attach({ onMessage: (e) => got.push(e), onClose: () => {} });
  carrier.send({ streamOpen: { streamId: 'sample', kind: 'objects', epoch: 1, sourceRegion: 'eu-west' } });
  await waitFor('stream state', async () => got.some((e) => e.streamState), 10_000, 50);
  const state = got.find((e) => e.streamState)!.streamState!;
  const meta = Buffer.from(objectOpCodec.encode({ put: { path: '../escaped.txt', version: { size: 5, mtimeUs: 1_700_000_000_000_000, mode: 0o644 }, offset: 0 } }));
  const data = Buffer.from('owned');
  carrier.send({ data: { streamId: 'sample', seq: state.durableSeq + 1, epoch: 1, encoding: 0, digest: frameDigest(meta, data), meta, payload: data, rawLength: data.length, resync: false } });
  await waitFor('stream halted', async () => (await dest.metric('dwcp_stream_halted')) === 1, 10_000, 100);
  assert.ok(got.some((e) => e.error?.code === 'STREAM_HALTED'), 'the liar was told the stream halted');
  assert.equal(existsSync(join(dir, 'escaped.txt')), false, 'nothing written outside the sink');
  carrier.close('done');
});

test('after all that the agent still serves and its memory stayed bounded', async () => {
  const before = await dest.rssBytes();
  // Many connections each announcing a 60 MiB frame and sending a little.
  const len = Buffer.alloc(4);
  len.writeUInt32BE(60 * 1024 * 1024);
  await Promise.all(Array.from({ length: 20 }, () => sendRaw([hello(), len, Buffer.alloc(1000)])));
  await sleep(200);
  const afterRss = await dest.rssBytes();
  assert.ok(afterRss - before < 100 * 1024 * 1024, `RSS grew by ${afterRss - before} bytes`);
  assert.equal((await fetch(`http://127.0.0.1:${setup.ports.destHttp}/healthz`)).status, 200);
  assert.ok((await dest.metric('dwcp_protocol_errors_total')) >= 4, 'protocol errors counted');
});
