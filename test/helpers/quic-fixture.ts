// Shared setup of the QUIC carrier tests: a throwaway PKI (the federation
// CA with agents of three regions, and a second CA with an impostor), a
// listening QuicTransport on loopback that records what it accepts and
// refuses, and a dial helper.

import { before, after } from 'node:test';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevCa, createDevPki, issueDevCert, type DevCert } from '../../src/cli/dev-pki.ts';
import { QuicTransport } from '../../src/transport/quic/quic-transport.ts';
import type { Carrier } from '../../src/transport/carrier.ts';
import type { AgentName, IdentityProblem } from '../../src/transport/peer-identity.ts';
import type { CarrierServer, Dialed, Identity, TlsMaterial } from '../../src/transport/transport.ts';
import type { Hello } from '../../src/wire/messages.ts';

/** Largest frame body the test carriers accept after the Hello, bytes. */
export const TEST_MAX_FRAME_BYTES = 1024 * 1024;

/** Time allowed for a handshake in the tests, ms (generous: the machine is shared). */
export const TEST_HANDSHAKE_MS = 10_000;

/** Time a QUIC test may take before it fails instead of hanging, ms. */
export const TEST_TIMEOUT_MS = 120_000;

/** The federation of the tests. */
export const FEDERATION = 'fed';

/** The agents of the lab test (test/netbench/quic-lab.test.ts): dev PKI names and identities. */
export const LAB_AGENTS = {
  a: { federation: 'lab', region: 'a', node: 'na' },
  b: { federation: 'lab', region: 'b', node: 'nb' },
};

/** Certificates by name: the server (region-a), clients of region-b and region-c, an impostor of another CA. */
export interface QuicPki {
  dir: string;
  material: Record<'server' | 'client' | 'otherRegion' | 'otherCa', TlsMaterial>;
}

/** Make the PKI in a temporary directory. */
export async function makePki(): Promise<QuicPki> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-quic-'));
  const certs = await createDevPki(join(dir, 'ca'), {
    server: { federation: FEDERATION, region: 'region-a', node: 'node-a' },
    client: { federation: FEDERATION, region: 'region-b', node: 'node-b' },
    otherRegion: { federation: FEDERATION, region: 'region-c', node: 'node-c' },
  });
  const otherCa = await createDevCa(join(dir, 'other-ca'), 'other-ca');
  const impostor = await issueDevCert(otherCa, 'impostor', { federation: FEDERATION, region: 'region-b', node: 'node-b' });
  // Every agent trusts the federation CA; the impostor's own files name its CA.
  const read = async (c: DevCert, caFile = certs.server.caFile): Promise<TlsMaterial> => ({ ca: await readFile(caFile), cert: await readFile(c.certFile), key: await readFile(c.keyFile) });
  return {
    dir,
    material: { server: await read(certs.server), client: await read(certs.client), otherRegion: await read(certs.otherRegion), otherCa: await read(impostor) },
  };
}

/** Remove the PKI. */
export async function removePki(pki: QuicPki): Promise<void> {
  await rm(pki.dir, { recursive: true, force: true });
}

/** The identity an agent claims in its Hello. */
export function identity(region: string, node: string): Identity {
  return { federation: FEDERATION, region, nodeId: node, capabilities: [] };
}

/** A listening QUIC transport of region-a and what happened to it. */
export interface Listener {
  server: CarrierServer;
  accepted: Array<{ carrier: Carrier; hello: Hello; peer: AgentName }>;
  refused: Array<{ reason: string; identity?: IdentityProblem }>;
  /** Resolves with the next accepted carrier. */
  nextCarrier(): Promise<Carrier>;
  /** Resolves with the next refusal. */
  nextRefusal(): Promise<{ reason: string; identity?: IdentityProblem }>;
}

/** Listen on a loopback port picked by the kernel, as region-a with `tls`. */
export async function listen(transport: QuicTransport, tls: TlsMaterial): Promise<Listener> {
  const accepted: Listener['accepted'] = [];
  const refused: Listener['refused'] = [];
  const carrierWaiters: Array<(c: Carrier) => void> = [];
  const refusalWaiters: Array<(r: { reason: string; identity?: IdentityProblem }) => void> = [];
  const server = await transport.listen({
    host: '127.0.0.1',
    port: 0,
    tls,
    identity: identity('region-a', 'node-a'),
    maxFrameBytes: TEST_MAX_FRAME_BYTES,
    handshakeTimeoutMs: TEST_HANDSHAKE_MS,
    admit: () => null,
    onCarrier(carrier, hello, peer) {
      accepted.push({ carrier, hello, peer });
      carrierWaiters.shift()?.(carrier);
    },
    onRefused(reason, _remote, problem) {
      const refusal = { reason, identity: problem };
      refused.push(refusal);
      refusalWaiters.shift()?.(refusal);
    },
  });
  return {
    server,
    accepted,
    refused,
    nextCarrier: () => new Promise((resolve) => carrierWaiters.push(resolve)),
    nextRefusal: () => new Promise((resolve) => refusalWaiters.push(resolve)),
  };
}

/** Dial the listener as `who` (region, node) with `tls`, meaning to reach `peerRegion`. */
export function dial(transport: QuicTransport, listener: Listener, tls: TlsMaterial, who: Identity, peerRegion = 'region-a'): Promise<Dialed> {
  return transport.dial({
    endpoint: { kind: 'quic', host: '127.0.0.1', port: listener.server.port },
    tls,
    identity: who,
    peerRegion,
    linkId: 'link-1',
    index: 3,
    maxFrameBytes: TEST_MAX_FRAME_BYTES,
    timeoutMs: TEST_HANDSHAKE_MS,
  });
}

/** What a test file shares: a transport, the PKI, and a listener of region-a. */
export interface ListenerFixture {
  transport: QuicTransport;
  pki: QuicPki;
  listener: Listener;
}

/** The shared fixture of a test file: made in before(), torn down in after(). */
export function useListener(): ListenerFixture {
  const fixture = { transport: new QuicTransport() } as ListenerFixture;
  before(async () => {
    fixture.pki = await makePki();
    fixture.listener = await listen(fixture.transport, fixture.pki.material.server);
  });
  after(async () => {
    await fixture.listener.server.close();
    await removePki(fixture.pki);
  });
  return fixture;
}
