// Bad input at the agent's WebSocket listener: garbage, plain HTTPS, a
// wrong path, an oversized message and one claiming 1 TiB, bytes inside the
// WebSocket that are not TLS, a certificate of another CA, one naming no
// agent. Each is refused with a logged reason; memory stays bounded and the
// agent keeps serving; the genuine member is accepted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { WebSocket, createWebSocketStream } from 'ws';
import { createDevPki, issueDevCert } from '../../src/cli/dev-pki.ts';
import { WsTransport, WS_MAX_MESSAGE_BYTES } from '../../src/transport/ws-transport.ts';
import type { Federation } from '../helpers/federation.ts';
import { federationOverWs, material, WS_PATH } from '../helpers/ws-federation.ts';
import { waitFor } from '../helpers/agent-process.ts';

const MiB = 1024 * 1024;
/** RSS growth allowed at the listener through the oversized input, bytes. */
const RSS_GROWTH_BOUND_BYTES = 64 * MiB;


let lone: Federation;
let wsPort: number;

before(async () => {
  ({ fed: lone, wsPort } = await federationOverWs(1 * MiB));
  await lone.dest.start();
});

after(async () => {
  await lone.cleanup();
});

/** Wait for a "connection refused" log line of the destination, after line `from`, matching pattern. */
async function refusedSince(from: number, pattern: RegExp): Promise<void> {
  await waitFor(`a "connection refused" line matching ${pattern}`, async () => lone.dest.logs.slice(from).some((l) => l.includes('"msg":"connection refused"') && pattern.test(l)), 10_000, 50);
}

/** An upgraded WebSocket to the destination's listener (hop TLS not verified: the test plays a stranger). */
async function openWs(path = WS_PATH): Promise<WebSocket> {
  const ws = new WebSocket(`wss://127.0.0.1:${wsPort}${path}`, { rejectUnauthorized: false, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return ws;
}

/** Resolve with the close code when the server closes the WebSocket. */
function closeCode(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => {
    ws.on('error', () => {});
    ws.once('close', (code) => resolve(code));
  });
}

test('garbage bytes at the WebSocket port are refused at the hop TLS with a logged reason', async () => {
  const from = lone.dest.logs.length;
  const socket = net.connect({ host: '127.0.0.1', port: wsPort });
  socket.on('error', () => {});
  socket.write(Buffer.from('\x16\x03\x01\x00\x05garbage-not-a-client-hello'));
  await refusedSince(from, /"reason":"tls: /);
  socket.destroy();
});

test('plain HTTPS without an upgrade gets 426, a wrong path 404, each logged', async () => {
  let from = lone.dest.logs.length;
  const res = await new Promise<number>((resolve, reject) => {
    const req = (tls.connect({ host: '127.0.0.1', port: wsPort, rejectUnauthorized: false }, () => req.write(`GET ${WS_PATH} HTTP/1.1\r\nHost: x\r\n\r\n`)));
    req.once('data', (d: Buffer) => {
      resolve(Number(d.toString().split(' ')[1]));
      req.destroy();
    });
    req.once('error', reject);
  });
  assert.equal(res, 426);
  await refusedSince(from, /http: GET \/dwcp without a WebSocket upgrade/);
  from = lone.dest.logs.length;
  await assert.rejects(openWs('/elsewhere'), /Unexpected server response: 404/);
  await refusedSince(from, /websocket: path \\"\/elsewhere\\" is not \\"\/dwcp\\"/);
});

test('an oversized message and one claiming 1 TiB are refused (close 1009) before they are buffered', async () => {
  const rssBefore = await lone.dest.rssBytes();
  let from = lone.dest.logs.length;
  const ws = await openWs();
  const closed = closeCode(ws);
  ws.send(Buffer.alloc(WS_MAX_MESSAGE_BYTES + 1));
  assert.equal(await closed, 1009);
  await refusedSince(from, /websocket: Max payload size exceeded/);

  // A frame header claiming 2^40 bytes, then data: refused at the header.
  from = lone.dest.logs.length;
  const huge = await openWs();
  const hugeClosed = closeCode(huge);
  const header = Buffer.alloc(14);
  header[0] = 0x82; // FIN + binary
  header[1] = 0x80 | 127; // masked, 64-bit length
  header.writeBigUInt64BE(1n << 40n, 2);
  const raw = (huge as unknown as { _socket: net.Socket })._socket;
  raw.write(header);
  for (let i = 0; i < 16; i++) raw.write(Buffer.alloc(MiB, 0x55));
  assert.equal(await hugeClosed, 1009);
  await refusedSince(from, /websocket: Max payload size exceeded/);
  assert.ok((await lone.dest.rssBytes()) - rssBefore < RSS_GROWTH_BOUND_BYTES, 'memory grew with the claimed size');
});

test('bytes inside the WebSocket that are not TLS are refused with a logged reason', async () => {
  const from = lone.dest.logs.length;
  const ws = await openWs();
  const closed = closeCode(ws);
  ws.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  await closed;
  await refusedSince(from, /"reason":"tls: /);
});

test('inside the WebSocket, a certificate of another CA is refused at TLS and one naming no agent at the Hello', async () => {
  const dir = join(lone.dir, 'ws-strangers');
  const other = await createDevPki(join(dir, 'other'), { stranger: { federation: 'demo', region: 'eu-west', node: 'eu-west-node-1' } }, 'other-ca');
  // Another CA: the agent's inner TLS refuses the client certificate; nothing is answered.
  let from = lone.dest.logs.length;
  const ws = await openWs();
  const stream = createWebSocketStream(ws);
  stream.on('error', () => {});
  const inner = tls.connect({ socket: stream, ...material(other.stranger), checkServerIdentity: () => undefined, rejectUnauthorized: false });
  inner.on('error', () => {});
  inner.once('secureConnect', () => inner.write('x'));
  // The agent ends the WebSocket (TLS 1.3 lets the client finish its handshake before the server checks its certificate).
  await new Promise((resolve) => ws.once('close', resolve));
  inner.destroy();
  await refusedSince(from, /"reason":"tls: client certificate refused: [A-Z_]+"/);

  // The federation CA but no dwcp:// identity: through the real dialer, refused at the Hello and counted.
  const intruder = await issueDevCert(lone.setup.ca, 'intruder', null, { dir });
  const refusedBefore = await lone.dest.metric('dwcp_peer_identity_refusals_total', 'problem="no_identity"');
  from = lone.dest.logs.length;
  await assert.rejects(new WsTransport().dial({
    endpoint: { kind: 'ws', host: '127.0.0.1', port: wsPort, path: WS_PATH },
    tls: material(intruder), identity: { federation: 'demo', region: 'eu-west', nodeId: 'eu-west-node-1', capabilities: [] },
    peerRegion: 'us-east', linkId: 'ws-intruder', index: 0, maxFrameBytes: MiB, timeoutMs: 10_000,
  }), /refused: identity: certificate has no dwcp:\/\/<federation>\/<region>\/<node> URI SAN/);
  await refusedSince(from, /handshake refused: identity: certificate has no dwcp:/);
  assert.equal(await lone.dest.metric('dwcp_peer_identity_refusals_total', 'problem="no_identity"'), refusedBefore + 1);
});

test('the genuine member dials the listener directly over wss:// and is accepted; the dialer checks the server names us-east', async () => {
  const member = material(lone.setup.certs['eu-west']);
  const identity = { federation: 'demo', region: 'eu-west', nodeId: 'eu-west-node-1', capabilities: [] };
  const request = { endpoint: { kind: 'ws' as const, host: '127.0.0.1', port: wsPort, path: WS_PATH }, tls: member, identity, linkId: 'ws-direct', index: 0, maxFrameBytes: MiB, timeoutMs: 10_000 };
  const { carrier, reply } = await new WsTransport().dial({ ...request, peerRegion: 'us-east' });
  assert.equal(reply.accepted, true);
  assert.equal(reply.region, 'us-east');
  assert.equal(carrier.kind, 'ws');
  carrier.close('test done');
  // Dialing us-east's listener while expecting ap-south: refused by the dialer's own identity check.
  await assert.rejects(new WsTransport().dial({ ...request, peerRegion: 'ap-south' }), /server certificate names dwcp:\/\/demo\/us-east\/us-east-node-1, not an agent of federation "demo" region "ap-south"/);
  assert.equal((await fetch(`http://127.0.0.1:${lone.setup.ports.destHttp}/healthz`)).status, 200, 'the agent still serves');
});
