// amst.transport auto on a real link (loopback, real TLS and QUIC
// listeners): the first probe runs before the owner hears onUp, it measures
// every kind the endpoints offer on probe carriers that join the running
// session (same link id, slot PROBE_CARRIER_INDEX), the link runs the kind
// the choice names, and /status-style state and the info metric say why.
// A kind nobody answers is left out with its dial error. Which of two
// working kinds wins is speed, and not asserted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { OutboundLink } from '../../src/transport/link.ts';
import { InboundLink } from '../../src/transport/inbound-link.ts';
import { TlsTransport } from '../../src/transport/tls-transport.ts';
import { QuicTransport } from '../../src/transport/quic/quic-transport.ts';
import { NATIVE_SOCKET_CONTROL } from '../../src/amst/link-control.ts';
import { PROBE_CARRIER_INDEX } from '../../src/transport/path-probe.ts';
import { Metrics } from '../../src/agent/metrics.ts';
import { freePort } from '../../src/cli/free-port.ts';
import type { CarrierServer, Transports } from '../../src/transport/transport.ts';
import type { TransportChoiceStatus } from '../../src/transport/path-selector.ts';
import { TEST_HANDSHAKE_MS, TEST_MAX_FRAME_BYTES, TEST_TIMEOUT_MS, identity, makePki, removePki, type QuicPki } from '../helpers/quic-fixture.ts';

const MiB = 1024 * 1024;

let pki: QuicPki;

before(async () => {
  pki = await makePki();
});

after(async () => {
  await removePki(pki);
});

/** Listeners of the given transports on one port number (TCP for TLS, UDP for QUIC) that answer Pings; records each carrier's link id and slot. */
async function peer(transports: Transports, metrics: Metrics): Promise<{ port: number; carriers: Array<{ linkId: string; index: number; kind: string }>; servers: CarrierServer[] }> {
  const port = await freePort();
  const carriers: Array<{ linkId: string; index: number; kind: string }> = [];
  let inbound: InboundLink | null = null;
  const servers: CarrierServer[] = [];
  for (const transport of Object.values(transports)) {
    servers.push(await transport.listen({
      host: '127.0.0.1', port, tls: pki.material.server, identity: identity('region-a', 'node-a'),
      maxFrameBytes: TEST_MAX_FRAME_BYTES, handshakeTimeoutMs: TEST_HANDSHAKE_MS, admit: () => null,
      onCarrier(carrier, hello, who) {
        carriers.push({ linkId: hello.linkId, index: hello.carrierIndex, kind: carrier.kind });
        if (!inbound || inbound.linkId !== hello.linkId) {
          inbound = new InboundLink(who, hello.linkId, {
            onMessage: (l, env) => env.ping && l.send({ pong: { nonce: env.ping.nonce, sentUnixMicros: env.ping.sentUnixMicros } }),
            onClosed: () => {},
          }, metrics);
        }
        inbound.add(carrier, hello.carrierIndex);
      },
      onRefused: (reason) => assert.fail(`refused: ${reason}`),
    }));
  }
  return { port, carriers, servers };
}

function autoLink(endpoints: OutboundLink['options']['endpoints'], transports: Transports, metrics: Metrics): OutboundLink {
  return new OutboundLink({
    peerRegion: 'region-a', endpoints, transports, carriers: 2, tls: () => pki.material.client, identity: identity('region-b', 'node-b'),
    maxFrameBytes: TEST_MAX_FRAME_BYTES, carrierWindowBytes: MiB, linkWindowBytes: 16 * MiB,
    connectTimeoutMs: TEST_HANDSHAKE_MS, initialBackoffMs: 100, maxBackoffMs: 1_000, logger: pino({ level: 'silent' }), metrics,
    autoTransport: { reprobeIntervalMs: 600_000, probeBytes: 2 * MiB },
  });
}

test('auto: the first probe measures TLS and QUIC before onUp, on carriers of the running session; the link runs the chosen kind', { timeout: TEST_TIMEOUT_MS }, async () => {
  const metrics = new Metrics({ processMetrics: false });
  const transports: Transports = { tls: new TlsTransport(NATIVE_SOCKET_CONTROL), quic: new QuicTransport() };
  const far = await peer(transports, metrics);
  const link = autoLink([{ kind: 'tls', host: '127.0.0.1', port: far.port }, { kind: 'quic', host: '127.0.0.1', port: far.port }], transports, metrics);
  try {
    // What the owner sees at onUp: a decided choice, and the link on that kind.
    const atUp = await new Promise<{ choice: TransportChoiceStatus; transport: string | null; session: number }>((resolve) => link.start({
      onUp: () => resolve({ choice: link.transportChoice, transport: link.transport, session: link.session }),
      onDown: () => {},
      onMessage: () => {},
    }));
    assert.ok(atUp.choice.probedAt !== null, 'onUp came before the first probe decided');
    assert.equal(atUp.choice.probeReason, 'first');
    assert.ok(['measured_best', 'kept'].includes(atUp.choice.reason), atUp.choice.reason);
    assert.equal(atUp.transport, atUp.choice.kind);
    assert.ok(atUp.session > 0);
    const measured = Object.fromEntries(atUp.choice.measurements.map((m) => [m.kind, m]));
    assert.deepEqual(Object.keys(measured).sort(), ['quic', 'tls']);
    for (const m of Object.values(measured)) assert.ok((m.goodputBytesPerS ?? 0) > 0, `${m.kind}: ${m.error}`);

    // Probe carriers joined the session of the first connect (its link id), in the probe slot, one per kind.
    const probes = far.carriers.filter((c) => c.index === PROBE_CARRIER_INDEX);
    assert.deepEqual(probes.map((c) => c.kind).sort(), ['quic', 'tls']);
    assert.equal(new Set(probes.map((c) => c.linkId)).size, 1);
    assert.ok(far.carriers.some((c) => c.index !== PROBE_CARRIER_INDEX && c.linkId === probes[0].linkId), 'the probes ran inside the first session');

    // One info series: the chosen kind and why; a probe goodput gauge per kind.
    const info = (await metrics.linkTransportInfo.get()).values.filter((v) => v.value === 1);
    assert.deepEqual(info.map((v) => [v.labels.kind, v.labels.reason]), [[atUp.choice.kind, atUp.choice.reason]]);
    const probeGauges = (await metrics.linkProbeGoodput.get()).values;
    assert.deepEqual(probeGauges.map((v) => v.labels.kind).sort(), ['quic', 'tls']);
  } finally {
    link.close();
    for (const s of far.servers) await s.close();
  }
});

test('auto: a kind nobody answers is left out with its dial error; the other is only_reachable', { timeout: TEST_TIMEOUT_MS }, async () => {
  const metrics = new Metrics({ processMetrics: false });
  const tls = new TlsTransport(NATIVE_SOCKET_CONTROL);
  const far = await peer({ tls }, metrics);
  // A QUIC endpoint on a UDP port nothing listens on (the dial times out, as where UDP is dropped), listed first.
  const deadPort = await freePort();
  const link = autoLink([{ kind: 'quic', host: '127.0.0.1', port: deadPort }, { kind: 'tls', host: '127.0.0.1', port: far.port }], { tls, quic: new QuicTransport() }, metrics);
  try {
    const choice = await new Promise<TransportChoiceStatus>((resolve) => link.start({ onUp: () => resolve(link.transportChoice), onDown: () => {}, onMessage: () => {} }));
    assert.equal(choice.kind, 'tls');
    assert.equal(choice.reason, 'only_reachable');
    const quic = choice.measurements.find((m) => m.kind === 'quic')!;
    assert.equal(quic.goodputBytesPerS, null);
    assert.match(quic.error ?? '', new RegExp(`quic://127\\.0\\.0\\.1:${deadPort}`));
    assert.equal(link.transport, 'tls');
  } finally {
    link.close();
    for (const s of far.servers) await s.close();
  }
});
