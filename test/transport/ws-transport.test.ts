// The WebSocket transport on its own (no agents): frames far above the
// WebSocket message limit cross intact, both ways, because the TLS stream
// inside is cut into bounded messages; and a carrier closes when its
// WebSocket is cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevPki } from '../../src/cli/dev-pki.ts';
import { WsTransport, WS_MAX_MESSAGE_BYTES } from '../../src/transport/ws-transport.ts';
import { frameEnvelope } from '../../src/transport/envelope-framing.ts';
import type { Carrier } from '../../src/transport/carrier.ts';
import type { Envelope } from '../../src/wire/messages.ts';
import { material } from '../helpers/ws-federation.ts';
import { waitFor } from '../helpers/agent-process.ts';

const MiB = 1024 * 1024;
const FRAME_PAYLOAD_BYTES = 16 * MiB;

function dataFrame(seq: number): Buffer {
  const payload = Buffer.alloc(FRAME_PAYLOAD_BYTES, seq);
  return frameEnvelope({ data: { streamId: 's', seq, epoch: 1, encoding: 0, digest: createHash('sha256').update(payload).digest(), meta: Buffer.alloc(0), payload, rawLength: payload.length, resync: false } });
}

test('16 MiB frames cross a WebSocket carrier intact both ways (the message limit is 1 MiB)', { timeout: 120_000 }, async () => {
  assert.ok(FRAME_PAYLOAD_BYTES > 8 * WS_MAX_MESSAGE_BYTES);
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-ws-transport-'));
  try {
    const pki = await createDevPki(dir, { us: { federation: 'demo', region: 'us-east', node: 'us-1' }, eu: { federation: 'demo', region: 'eu-west', node: 'eu-1' } });
    const atServer: Envelope[] = [];
    let accepted: Carrier | null = null;
    const server = await new WsTransport().listen({
      host: '127.0.0.1', port: 0, path: '/dwcp', tls: material(pki.us), identity: { federation: 'demo', region: 'us-east', nodeId: 'us-1', capabilities: [] },
      maxFrameBytes: 32 * MiB, handshakeTimeoutMs: 10_000, admit: () => null,
      onCarrier: (carrier) => {
        accepted = carrier;
        carrier.attach({ onMessage: (e) => atServer.push(e), onClose: () => {} });
      },
      onRefused: (reason) => assert.fail(`refused: ${reason}`),
    });
    try {
      const { carrier } = await new WsTransport().dial({
        endpoint: { kind: 'ws', host: '127.0.0.1', port: server.port, path: '/dwcp' }, tls: material(pki.eu),
        identity: { federation: 'demo', region: 'eu-west', nodeId: 'eu-1', capabilities: [] }, peerRegion: 'us-east', linkId: 'big', index: 0, maxFrameBytes: 32 * MiB, timeoutMs: 10_000,
      });
      const atClient: Envelope[] = [];
      let clientClosed = '';
      carrier.attach({ onMessage: (e) => atClient.push(e), onClose: (info) => (clientClosed = info.reason) });
      for (let seq = 1; seq <= 3; seq++) carrier.write(dataFrame(seq));
      await waitFor('3 frames at the server', async () => atServer.length === 3, 60_000, 20);
      for (const [i, e] of atServer.entries()) {
        assert.equal(e.data?.seq, i + 1);
        assert.deepEqual(createHash('sha256').update(e.data!.payload).digest(), e.data!.digest, `frame ${i + 1} altered`);
      }
      accepted!.write(dataFrame(9));
      await waitFor('the frame back at the client', async () => atClient.length === 1, 60_000, 20);
      assert.equal(atClient[0].data?.payload.length, FRAME_PAYLOAD_BYTES);
      // Cutting the server's side ends the client's carrier too.
      accepted!.close('cut');
      await waitFor('the client carrier closed', async () => carrier.closed, 10_000, 20);
      assert.notEqual(clientClosed, '');
    } finally {
      await server.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
