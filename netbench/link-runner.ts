// A DWCP link moving synthetic incompressible data, for netbench and its
// tests. Run as a script inside a lab namespace; one JSON object per line.
//   node link-runner.ts sink --port P --pki DIR [--transport KINDS]
//     Carrier server: verifies each frame's SHA-256, reports it delivered
//     (amst:delivered@1, as a stream receiver does once a frame is held),
//     applies frames in sequence order, acknowledges the contiguous prefix
//     (as a stream receiver does after its durable write), answers Pings
//     (auto's probes), and on SIGTERM prints
//     {"event":"summary", bytes, frames, mismatches, chain, rssMaxBytes, cpuSeconds}.
//     It listens for TLS on P/tcp, WebSocket on P+WS_PORT_OFFSET/tcp and
//     QUIC on P/udp (KINDS: a comma list, default tls,ws,quic).
//   node link-runner.ts source --host H --port P --pki DIR --seconds S
//        [--carriers N] [--adaptive] [--cc auto|bbr|cubic|reno]
//        [--min-streams N] [--max-streams N] [--cap BYTES_PER_S] [--bytes N]
//        [--transport tls|ws|quic|auto]
//     OutboundLink (+ AmstLoop when --adaptive) sending frames as fast as
//     the link window allows, for S seconds or N bytes; prints a
//     {"event":"tick"} line per second and a final {"event":"summary"}.
//     auto offers all three kinds (TLS first) and lets the link measure
//     and choose; a switch of kind starts a new session, and the source
//     resumes after the sink's acknowledged prefix as a stream would.
// Why a runner and not two agents: it measures the transport (link,
// scheduler, carriers, controller) without the objects stream's disk and
// consensus work, so the number is AMST's; test/e2e covers the agents.

import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { OutboundLink, LinkDownError } from '../src/transport/link.ts';
import { frameDataFrame } from '../src/wire/data-frame-writer.ts';
import { InboundLink } from '../src/transport/inbound-link.ts';
import { TlsTransport, HANDSHAKE_TIMEOUT_MS, type TlsMaterial } from '../src/transport/tls-transport.ts';
import { WsTransport } from '../src/transport/ws-transport.ts';
import type { Carrier } from '../src/transport/carrier.ts';
import type { Hello } from '../src/wire/messages.ts';
import type { CarrierServer, Endpoint, TransportKind, Transports } from '../src/transport/transport.ts';
import type { AgentName } from '../src/transport/peer-identity.ts';
import { RUNNER_CERTS } from './runner-certs.ts';
import { BENCH_TRANSPORTS } from './report.ts';
import { AmstLoop, type AmstTick, type ControlledLink } from '../src/amst/amst-loop.ts';
import { availableCongestion } from '../native-bindings/index.ts';
import { NATIVE_SOCKET_CONTROL } from '../src/amst/link-control.ts';
import { deliveryCapability } from '../src/transport/delivery-acks.ts';
import { Metrics } from '../src/agent/metrics.ts';
import { Encoding, type DataFrame } from '../src/wire/messages.ts';

/** Payload bytes per frame. */
export const RUNNER_FRAME_BYTES = 128 * 1024;
/** Distinct random payloads cycled through (precomputed digests). */
const PAYLOAD_POOL = 64;
/** Bytes sent and not acknowledged, per link: enough for 1 Gbit/s x 600 ms plus queue. */
const RUNNER_LINK_WINDOW_BYTES = 64 * 1024 * 1024;
/**
 * Frames the sink holds delivered and not yet applied, bytes: what it
 * announces in amst:delivered@1, as an agent announces its receivers' bound
 * (agent.ts: two link windows).
 */
const RUNNER_HOLD_BYTES = 2 * RUNNER_LINK_WINDOW_BYTES;
/** Both ends speak delivery acknowledgements like agents do (netbench measured the durable-only link before). */
const RUNNER_CAPABILITIES = [deliveryCapability(RUNNER_HOLD_BYTES)];
/** Bytes queued per carrier in userspace. */
const RUNNER_CARRIER_WINDOW_BYTES = 1024 * 1024;
/** Interval of tick lines and of the controller, ms. */
const TICK_MS = 1_000;
/** The stream id of the synthetic stream. */
const STREAM_ID = 'netbench';
/** The sink's WebSocket listener is on the TLS port plus this (QUIC shares the TLS port number, on UDP). */
export const WS_PORT_OFFSET = 1;
/** HTTP path of the sink's WebSocket listener. */
const WS_PATH = '/dwcp';
/** Time the first session may take (dials of kinds that do not answer, auto's first probe), ms. */
const FIRST_SESSION_TIMEOUT_MS = 60_000;
/** auto in the runner: probe padding per kind (the agent's default is 8 MiB; rows are short). */
const RUNNER_PROBE_BYTES = 8 * 1024 * 1024;
/** auto in the runner: re-probe interval, ms (longer than any row: one choice per row, plus path-change probes). */
const RUNNER_REPROBE_MS = 10 * 60_000;

/** Transports of the given kinds (QUIC loaded only when asked for). */
async function transportsFor(kinds: readonly TransportKind[]): Promise<Transports> {
  const out: Transports = {};
  if (kinds.includes('tls')) out.tls = new TlsTransport(NATIVE_SOCKET_CONTROL);
  if (kinds.includes('ws')) out.ws = new WsTransport(NATIVE_SOCKET_CONTROL);
  if (kinds.includes('quic')) {
    const { QuicTransport } = await import('../src/transport/quic/quic-transport.ts');
    out.quic = new QuicTransport();
  }
  return out;
}

/** Certificates from a dev PKI directory made by createDevPki(dir, RUNNER_CERTS). */
async function loadPki(dir: string, name: string): Promise<TlsMaterial> {
  const [ca, cert, key] = await Promise.all([
    readFile(join(dir, 'dwcp-dev-ca.crt')), readFile(join(dir, `${name}.crt`)), readFile(join(dir, `${name}.key`)),
  ]);
  return { ca, cert, key };
}

/** Peak resident set size so far, bytes. */
function rssMaxBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** User + system CPU of this process, seconds. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function print(obj: object): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** The receiving end: verify, order, acknowledge. */
async function sink(port: number, pki: string, kinds: readonly TransportKind[]): Promise<void> {
  const metrics = new Metrics({ processMetrics: false });
  const tls = await loadPki(pki, 'b');
  const chain = createHash('sha256');
  let next = 1;
  let bytes = 0;
  let frames = 0;
  let mismatches = 0;
  let duplicates = 0;
  const pending = new Map<number, Buffer>();
  let pendingBytes = 0;
  let pendingBytesMax = 0;
  const identity = { federation: RUNNER_CERTS.b.federation, region: RUNNER_CERTS.b.region, nodeId: RUNNER_CERTS.b.node, capabilities: RUNNER_CAPABILITIES };
  let current: InboundLink | null = null;

  // Report held frames delivered; apply in order; acknowledge the contiguous prefix.
  const onData = (link: InboundLink, frame: DataFrame): void => {
    const payload = Buffer.from(frame.payload);
    if (!createHash('sha256').update(payload).digest().equals(Buffer.from(frame.digest))) {
      mismatches++;
      link.send({ nack: { streamId: STREAM_ID, seq: frame.seq, reason: 'digest mismatch' } });
      return;
    }
    if (frame.seq < next || pending.has(frame.seq)) {
      // A duplicate (a hedge's second copy, a resend after a carrier closed): reported again.
      duplicates++;
      link.delivered(STREAM_ID, frame.seq);
      return;
    }
    pending.set(frame.seq, payload);
    pendingBytes += payload.length;
    pendingBytesMax = Math.max(pendingBytesMax, pendingBytes);
    link.delivered(STREAM_ID, frame.seq);
    const before = next;
    for (let p = pending.get(next); p !== undefined; p = pending.get(next)) {
      chain.update(p);
      bytes += p.length;
      frames++;
      pending.delete(next);
      pendingBytes -= p.length;
      next++;
    }
    if (next !== before) link.send({ ack: { streamId: STREAM_ID, durableSeq: next - 1, chain: Buffer.alloc(0) } });
  };

  // One session at a time, whatever kind its carriers are; Pings (auto's probes) answered without their padding.
  const onCarrier = (carrier: Carrier, hello: Hello, peer: AgentName): void => {
    if (!current || current.linkId !== hello.linkId || current.closed) {
      current?.close('new session');
      current = new InboundLink(peer, hello.linkId, {
        onMessage: (l, env) => {
          if (env.data) onData(l, env.data);
          else if (env.ping) l.send({ pong: { nonce: env.ping.nonce, sentUnixMicros: env.ping.sentUnixMicros } });
        },
        onClosed: () => {},
      }, metrics, hello.capabilities);
    }
    current.add(carrier, hello.carrierIndex);
  };
  const transports = await transportsFor(kinds);
  const servers: CarrierServer[] = [];
  for (const kind of kinds) {
    servers.push(await transports[kind]!.listen({
      host: '0.0.0.0', port: kind === 'ws' ? port + WS_PORT_OFFSET : port, path: WS_PATH, tls, identity,
      maxFrameBytes: 4 * RUNNER_FRAME_BYTES, handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      admit: () => null, onCarrier,
      onRefused: (reason, remote) => process.stderr.write(`link-runner sink: refused ${kind} ${remote}: ${reason}\n`),
    }));
  }
  print({ event: 'listening', port, kinds });
  const finish = (): void => {
    print({ event: 'summary', bytes, frames, mismatches, duplicates, pendingFrames: pending.size, pendingBytesMax, chain: chain.copy().digest('hex'), rssMaxBytes: rssMaxBytes(), cpuSeconds: cpuSeconds() });
    for (const server of servers) void server.close();
    current?.close('done');
    process.exit(0);
  };
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
}

/** Options of the sending end. */
interface SourceOptions {
  host: string;
  port: number;
  pki: string;
  seconds: number;
  maxBytes: number;
  carriers: number;
  adaptive: boolean;
  cc: 'auto' | 'bbr' | 'cubic' | 'reno';
  minStreams: number;
  maxStreams: number;
  cap: number | null;
  transport: (typeof BENCH_TRANSPORTS)[number];
}

/** The sending end: frames as fast as the link takes them, for a bounded time. */
async function source(o: SourceOptions): Promise<void> {
  const tls = await loadPki(o.pki, 'a');
  const logger = pino({ level: 'error' }, pino.destination(2));
  const metrics = new Metrics({ processMetrics: false });
  const pool = Array.from({ length: PAYLOAD_POOL }, () => randomBytes(RUNNER_FRAME_BYTES));
  const digests = pool.map((p) => createHash('sha256').update(p).digest());
  const chain = createHash('sha256');
  // Endpoints of the kind asked for; auto offers all three, TLS first (the link connects there, then measures).
  const all: Endpoint[] = [
    { kind: 'tls', host: o.host, port: o.port },
    { kind: 'ws', host: o.host, port: o.port + WS_PORT_OFFSET, path: WS_PATH },
    { kind: 'quic', host: o.host, port: o.port },
  ];
  const endpoints = o.transport === 'auto' ? all : all.filter((e) => e.kind === o.transport);
  const link = new OutboundLink({
    peerRegion: RUNNER_CERTS.b.region, endpoints, transports: await transportsFor(endpoints.map((e) => e.kind)),
    autoTransport: o.transport === 'auto' ? { reprobeIntervalMs: RUNNER_REPROBE_MS, probeBytes: RUNNER_PROBE_BYTES } : undefined,
    carriers: o.carriers, tls: () => tls,
    identity: { federation: RUNNER_CERTS.a.federation, region: RUNNER_CERTS.a.region, nodeId: RUNNER_CERTS.a.node, capabilities: RUNNER_CAPABILITIES },
    maxFrameBytes: 4 * RUNNER_FRAME_BYTES, carrierWindowBytes: RUNNER_CARRIER_WINDOW_BYTES, linkWindowBytes: RUNNER_LINK_WINDOW_BYTES,
    connectTimeoutMs: 30_000, initialBackoffMs: 200, maxBackoffMs: 2_000, logger, metrics,
  });
  let acked = 0;
  // Sessions: the first, and any later one (auto switching kinds, a reconnect).
  let session = 0;
  let onSession: (() => void) | null = null;
  const nextSession = (): Promise<void> => new Promise((resolve) => { onSession = resolve; });
  const up = nextSession();
  link.start({
    onUp: (s) => {
      session = s;
      onSession?.();
    },
    onDown: (_s, reason) => process.stderr.write(`link-runner source: link down: ${reason}\n`),
    onMessage: (env) => {
      if (env.ack) {
        link.acknowledge(env.ack.streamId, env.ack.durableSeq);
        acked = Math.max(acked, env.ack.durableSeq);
      }
      if (env.nack) link.resend(env.nack.streamId, env.nack.seq);
    },
  });

  // Controller (adaptive) or a fixed count with the chosen congestion control.
  const available = availableCongestion();
  const controller = {
    minStreams: o.minStreams, maxStreams: o.maxStreams, bandwidthCapBytesPerS: o.cap,
    availableCongestion: available, congestionControl: o.cc, intervalMs: TICK_MS,
  };
  const onTick = (tick: AmstTick): void => print({
    event: 'tick', atMs: Math.round(tick.atMs), goodputBytesPerS: Math.round(tick.sample.goodputBytesPerS),
    carriers: tick.sample.carrierCount, target: tick.decision.carriers, cc: tick.decision.congestionControl,
    reason: tick.decision.reason, rttMs: +tick.meanRttMs.toFixed(2), retransBytes: tick.retransBytes,
    carrierRateBytesPerS: Math.round(tick.sample.carriers.reduce((a, c) => a + c.sentBytes - c.retransBytes, 0) / (TICK_MS / 1000)),
    inflightBytes: link.bytesInFlight, deliveredNotDurableBytes: link.bytesDeliveredNotDurable, rssBytes: process.memoryUsage().rss,
  });
  const loop = new AmstLoop(link, { controller, initialCarriers: o.carriers, onTick });
  link.setRateLimit(o.cap);
  if (!(await within(up, FIRST_SESSION_TIMEOUT_MS))) throw new Error(`no session within ${FIRST_SESSION_TIMEOUT_MS} ms`);
  const startedAt = performance.now();
  const cpuAtStart = cpuSeconds();
  if (o.adaptive) loop.start();
  else {
    // Fixed: the loop only measures (its decision is not applied).
    const { chooseCongestion } = await import('../src/amst/controller.ts');
    link.setCongestionControl(chooseCongestion(controller));
    const sampler = new AmstLoop(measureOnly(link), { controller, initialCarriers: o.carriers, onTick });
    sampler.start();
  }

  // Send until the time or byte budget is spent; backpressure comes from sendData.
  // A session that ends (auto moving to another kind) resumes after the acknowledged prefix, as a stream does.
  const deadline = startedAt + o.seconds * 1000;
  let seq = 0;
  let sessions = 1;
  while (performance.now() < deadline && seq * RUNNER_FRAME_BYTES < o.maxBytes) {
    try {
      seq++;
      const i = seq % PAYLOAD_POOL;
      const framed = frameDataFrame({ streamId: STREAM_ID, seq, epoch: 1, encoding: Encoding.RAW, digest: digests[i], meta: Buffer.alloc(0), payload: pool[i], rawLength: RUNNER_FRAME_BYTES, resync: false });
      await link.sendData(session, STREAM_ID, seq, framed);
    } catch (err) {
      if (!(err instanceof LinkDownError)) throw err;
      if (!(await within(nextSession(), deadline - performance.now()))) break;
      sessions++;
      seq = acked;
    }
  }
  // Byte budget: wait for the last acknowledgement (bounded by a grace).
  const drainUntil = performance.now() + 60_000;
  while (o.maxBytes !== Infinity && acked < seq && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 50));
  const seconds = (performance.now() - startedAt) / 1000;
  const cpu = cpuSeconds() - cpuAtStart;
  loop.stop();
  // All sent frames acknowledged: their chain (frame s carries payload s % PAYLOAD_POOL), which the sink's must match.
  if (acked === seq) for (let s = 1; s <= acked; s++) chain.update(pool[s % PAYLOAD_POOL]);
  print({
    event: 'summary', seconds, sentFrames: seq, ackedFrames: acked, ackedBytes: acked * RUNNER_FRAME_BYTES,
    goodputBytesPerS: (acked * RUNNER_FRAME_BYTES) / seconds, chainOfAcked: acked === seq ? chain.digest('hex') : null,
    carriers: link.liveCarriers, rssMaxBytes: rssMaxBytes(), cpuSeconds: cpu,
    transport: link.transport, transportChoice: link.transportChoice, sessions,
  });
  link.close();
  process.exit(0);
}

/**
 * Wait for a session, at most ms; false on timeout. The timer is ref'd on
 * purpose: while a link waits to (re)connect nothing else holds the process
 * open (the link's timers are unref'd), and it would exit silently.
 */
async function within(session: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), Math.max(0, ms)); });
  const outcome = await Promise.race([session.then(() => true), timeout]);
  clearTimeout(timer);
  return outcome;
}

/** A link's measurements with its knobs disconnected (fixed-count rows only measure). */
function measureOnly(link: OutboundLink): ControlledLink {
  return {
    get closed() { return link.closed; },
    get acknowledgedBytes() { return link.acknowledgedBytes; },
    get liveCarriers() { return link.liveCarriers; },
    carrierPaths: () => link.carrierPaths(),
    setCarrierCount: () => {},
    setCongestionControl: () => {},
  };
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      host: { type: 'string' }, port: { type: 'string' }, pki: { type: 'string' }, seconds: { type: 'string', default: '20' },
      bytes: { type: 'string' }, carriers: { type: 'string', default: '1' }, adaptive: { type: 'boolean', default: false },
      cc: { type: 'string', default: 'auto' }, 'min-streams': { type: 'string', default: '1' }, 'max-streams': { type: 'string', default: '512' },
      cap: { type: 'string' }, transport: { type: 'string' },
    },
  });
  if (!values.port || !values.pki) throw new Error('link-runner: --port and --pki are required');
  if (mode === 'sink') {
    const kinds = (values.transport ?? 'tls,ws,quic').split(',') as TransportKind[];
    const bad = kinds.find((k) => !['tls', 'ws', 'quic'].includes(k));
    if (bad !== undefined) throw new Error(`link-runner sink: --transport must list tls, ws or quic, got "${bad}"`);
    return sink(Number(values.port), values.pki, kinds);
  }
  if (mode !== 'source') throw new Error(`link-runner: unknown mode '${mode}' (sink|source)`);
  if (!values.host) throw new Error('link-runner source: --host is required');
  const cc = values.cc as SourceOptions['cc'];
  if (!['auto', 'bbr', 'cubic', 'reno'].includes(cc)) throw new Error(`link-runner: --cc must be auto|bbr|cubic|reno, got ${cc}`);
  const transport = (values.transport ?? 'tls') as SourceOptions['transport'];
  if (!BENCH_TRANSPORTS.includes(transport)) throw new Error(`link-runner: --transport must be ${BENCH_TRANSPORTS.join('|')}, got ${transport}`);
  await source({
    host: values.host, port: Number(values.port), pki: values.pki, seconds: Number(values.seconds),
    maxBytes: values.bytes ? Number(values.bytes) : Infinity, carriers: Number(values.carriers), adaptive: values.adaptive, cc,
    minStreams: Number(values['min-streams']), maxStreams: Number(values['max-streams']), cap: values.cap ? Number(values.cap) : null,
    transport,
  });
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`link-runner: ${err.message}\n`);
  process.exit(1);
});
