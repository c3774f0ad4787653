// The dwcp agent: wires config to parts. For every stream whose source is
// in this region it elects a sender per destination and runs it over an
// outbound link to that region; for every stream with a destination here
// it runs a receiver behind the carrier server. Shutdown is a state
// machine: RUNNING -> DRAINING -> STOPPED (SIGTERM starts the drain).

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { Config, PgWalDestinationConfig, StreamConfig } from '../config/config.ts';
import { readTlsFiles } from '../config/tls-files.ts';
import { ConfigError } from '../config/config-error.ts';
import type { ConsensusStore } from '../consensus/consensus-store.ts';
import { EmbeddedStore } from '../consensus/embedded-store.ts';
import { EtcdStore } from '../consensus/etcd-store.ts';
import { campaign } from '../consensus/election.ts';
import { checkpointKey, leaderKey } from '../consensus/checkpoints.ts';
import { LeaseKeeper } from '../acp/lease-keeper.ts';
import { MemberView, registerMember } from '../acp/membership.ts';
import { LeadershipFence } from '../acp/leadership-fence.ts';
import { chainKey, sourceChainCheck } from '../acp/chain-check.ts';
import { ShardOwnership } from '../acp/shard-ownership.ts';
import { subStreamsOf, type SubStream } from '../acp/sub-streams.ts';
import { HdePool } from '../encoding/hde-pool.ts';
import { Backoff, sleepMs } from '../util/backoff.ts';
import { OutboundLink } from '../transport/link.ts';
import { InboundLink } from '../transport/inbound-link.ts';
import { deliveryCapability } from '../transport/delivery-acks.ts';
import { HANDSHAKE_TIMEOUT_MS, TlsTransport } from '../transport/tls-transport.ts';
import { WsTransport } from '../transport/ws-transport.ts';
import type { CarrierServer, Identity, ListenOptions, TlsMaterial, Transports } from '../transport/transport.ts';
import { ownIdentityProblem, pemIdentity, type AgentName } from '../transport/peer-identity.ts';
import { CertificateReloader } from '../transport/certificate-reloader.ts';
import type { TransportChoiceStatus } from '../transport/path-selector.ts';
import { amstLinkOptions, NATIVE_SOCKET_CONTROL, startAmst } from '../amst/link-control.ts';
import { DirSource } from '../streams/objects/dir-source.ts';
import { DirSink } from '../streams/objects/dir-sink.ts';
import type { Sink, Source } from '../streams/stream.ts';
import { WalSource, type WalSourceFailure } from '../streams/pg-wal/wal-source.ts';
import { destinationSlotName } from '../streams/pg-wal/slot-name.ts';
import { WalSink } from '../streams/pg-wal/wal-sink.ts';
import { startWalsenderServer } from '../streams/pg-wal/walsender-server.ts';
import type { ServedSpool } from '../streams/pg-wal/wal-file-server.ts';
import { PgWalMetrics, type PgWalStreamStatus } from '../streams/pg-wal/wal-stream-metrics.ts';
import type { ChunkQuery, Envelope, Hello, StreamOpen } from '../wire/messages.ts';
import { Metrics } from './metrics.ts';
import { LOCAL_STAGES, stageCapabilities } from '../encoding/hde/stages.ts';
import { RECORD_BATCH_CAPABILITY } from './record-batch.ts';
import { DictionaryStore } from '../encoding/hde/dictionary-store.ts';
import { StreamSender, type SenderStatus } from './stream-sender.ts';
import { StreamReceiver, type ReceiverStatus } from './stream-receiver.ts';
import { StreamAdmission, SourceConsensusUnavailableError } from './stream-admission.ts';
import { startHttpServer, type HttpServer } from './http-server.ts';
import { ReplicationSlo } from './replication-slo.ts';
import { diffConfig, type ConfigDiff } from './reconcile.ts';

/** Capabilities this build announces in the handshake: stream kinds, the chain digest and the HDE stages (hde:name@version). */
export const CAPABILITIES = ['objects', 'pg-wal', 'zstd', 'sha256-chain', RECORD_BATCH_CAPABILITY, ...stageCapabilities(LOCAL_STAGES)];

/** Link windows of one stream's unapplied frames a receiver holds before it cuts the peer off. */
const RECEIVER_HOLD_WINDOWS = 2;

/** Bytes of one stream's unapplied frames a receiver holds (announced to senders with amst:delivered@1). */
function receiverHoldBytes(config: Config): number {
  return config.amst.linkWindowBytes * RECEIVER_HOLD_WINDOWS;
}

/** Default grace period of a drain before STOPPED is forced. */
export const DEFAULT_DRAIN_GRACE_MS = 20_000;

/**
 * Fault injection for tests only: when this environment variable is "1" an
 * elected sender ignores the loss of its leadership (no self-fencing), so a
 * paused-and-resumed agent behaves as the worst zombie and only the
 * destination's epoch fence stands between it and the data.
 */
export const FAULT_ZOMBIE_ENV = 'DWCP_FAULT_ZOMBIE';

/** Longest wait, when a stream is removed or restarted live, for its senders' frames in flight to be acknowledged before they stop. */
export const STREAM_DRAIN_GRACE_MS = 5_000;

/** Poll interval of that wait, ms. */
const STREAM_DRAIN_POLL_MS = 50;

/** Checkpoint interval of synchronous pg-wal destinations, ms (the commit latency they add on top of the RTT). */
export const SYNC_CHECKPOINT_INTERVAL_MS = 2;

/** Lifecycle states. */
export type AgentState = 'STARTING' | 'RUNNING' | 'DRAINING' | 'STOPPED';

/** The drain did not finish within its grace period. */
export class DrainTimeoutError extends Error {
  override name = 'DrainTimeoutError';
}

/** Options beyond the config file. */
export interface AgentOptions {
  logger?: Logger;
  /** Record durably applied sequence numbers under <dataDir>/audit (tests, audits). */
  audit?: boolean;
  /** Objects sources end once in sync instead of watching (bench). */
  once?: boolean;
  /** Tests: wrap each sink (fault injection is passed in by tests, never read from the environment). */
  wrapSink?: (sink: Sink) => Sink;
  /** Tests: wrap each source, e.g. to see the resume points it is given. */
  wrapSource?: (source: Source) => Source;
  /** Tests: announce these Hello capabilities instead of CAPABILITIES (an agent of an older version). */
  capabilities?: string[];
}

/** Status of the whole agent, served at /status. */
export interface AgentStatus {
  state: AgentState;
  region: string;
  nodeId: string;
  /** Each elected sender; sourceError: a pg-wal source's last PostgreSQL error (null while it streams). */
  senders: Array<SenderStatus & { stream: string; shard: number; lagSeconds: number; sloAttainment: number | null; progress?: ReturnType<DirSource['progress']>; sourceError?: WalSourceFailure | null }>;
  receivers: ReceiverStatus[];
  links: Array<{ peer: string; carriers: number; inflightBytes: number; session: number; transport: string | null; transportChoice: TransportChoiceStatus }>;
  /** pg-wal positions and lag per stream (sent, durable-remote, replayed LSN). */
  pgWal: PgWalStreamStatus[];
}

interface SenderSlot {
  stream: StreamConfig;
  /** What this slot sends: the stream, or one shard of it. */
  part: SubStream;
  destRegion: string;
  sender: StreamSender | null;
  abort: AbortController;
  /** Replication delay and SLO attainment of this (sub-stream, destination). */
  slo: ReplicationSlo;
  /** Settles when the slot's leadership loop has ended. */
  done: Promise<void>;
}

/** A running agent. */
export class Agent {
  /** The running config; reconfigure() replaces it as a whole or not at all. */
  private current: Config;
  readonly logger: Logger;
  readonly metrics = new Metrics();
  private readonly pgWalMetrics = new PgWalMetrics(this.metrics);
  private state: AgentState = 'STARTING';
  private store!: ConsensusStore;
  private keeper: LeaseKeeper | null = null;
  /** Live agents of this region (membership records under their leases). */
  members: MemberView | null = null;
  /** The shards of sharded streams this agent should send, following members. */
  private ownership: ShardOwnership | null = null;
  private pool!: HdePool;
  /** This agent's certificates, kept current with their files. */
  private certs: CertificateReloader | null = null;
  /** Carrier transports by kind: the links dial through them, the servers accept through them. */
  private readonly transports: Transports = { tls: new TlsTransport(NATIVE_SOCKET_CONTROL), ws: new WsTransport(NATIVE_SOCKET_CONTROL) };
  /** Carrier servers: TLS always, WebSocket when listenWs is configured, QUIC when listenQuic is. */
  private readonly servers: CarrierServer[] = [];
  private http: HttpServer | null = null;
  private readonly links = new Map<string, OutboundLink>();
  private readonly inbound = new Map<string, InboundLink>();
  private readonly receivers = new Map<string, StreamReceiver>();
  /** Who may open and write each received stream (its source region, and epoch when verifiable). */
  private readonly admission: StreamAdmission;
  private readonly sources = new Map<string, Source>();
  private readonly slots: SenderSlot[] = [];
  private readonly walsenders = new Map<string, { port: number; close(): Promise<void> }>();
  private readonly options: AgentOptions;
  /** Reconfigurations run one after another. */
  private reconciling: Promise<unknown> = Promise.resolve();

  private constructor(config: Config, options: AgentOptions) {
    this.current = config;
    this.options = options;
    this.logger = options.logger ?? pino({ base: { region: config.region, node: config.nodeId } });
    this.admission = new StreamAdmission(config, this.metrics, this.logger);
  }

  /** Start an agent from a compiled config. */
  static async start(config: Config, options: AgentOptions = {}): Promise<Agent> {
    const agent = new Agent(config, options);
    try {
      await agent.startParts();
    } catch (err) {
      await agent.stop().catch(() => {});
      throw err;
    }
    return agent;
  }

  /** The running config. */
  get config(): Config {
    return this.current;
  }

  /** Lifecycle state. */
  get lifecycle(): AgentState {
    return this.state;
  }

  /** Port the TLS carrier server listens on. */
  get listenPort(): number {
    return this.servers.find((s) => s.kind === 'tls')?.port ?? 0;
  }

  /** Port the WebSocket carrier server listens on (0 when none). */
  get wsPort(): number {
    return this.servers.find((s) => s.kind === 'ws')?.port ?? 0;
  }

  /** UDP port the QUIC carrier server listens on (0 when none). */
  get quicPort(): number {
    return this.servers.find((s) => s.kind === 'quic')?.port ?? 0;
  }

  /** Port of /metrics, /healthz, /readyz, /status. */
  get httpPort(): number {
    return this.http?.port ?? 0;
  }

  /** Status snapshot. */
  status(): AgentStatus {
    return {
      state: this.state,
      region: this.config.region,
      nodeId: this.config.nodeId,
      senders: this.slots.flatMap((s) => {
        if (!s.sender) return [];
        const source = this.sources.get(sourceKey(s.stream, s.part, s.destRegion));
        // A pg-wal source's last PostgreSQL error (SQLSTATE, message) shows beside the sender.
        const sourceError = source instanceof WalSource ? { sourceError: source.progress().lastError } : {};
        // Lag: age of the oldest frame not yet durable at the destination.
        const oldest = this.links.get(s.destRegion)?.oldestInflight(s.part.id) ?? null;
        const lagSeconds = oldest === null ? 0 : (performance.now() - oldest) / 1000;
        return [{ ...s.sender.status(), stream: s.stream.id, shard: s.part.shard, lagSeconds, sloAttainment: s.slo.attainment(), progress: source instanceof DirSource ? source.progress() : undefined, ...sourceError }];
      }),
      receivers: [...this.receivers.values()].map((r) => r.status()),
      links: [...this.links.entries()].map(([peer, l]) => ({ peer, carriers: l.liveCarriers, inflightBytes: l.bytesInFlight, session: l.session, transport: l.transport, transportChoice: l.transportChoice })),
      pgWal: this.pgWalMetrics.snapshot(),
    };
  }

  /** Ready: the consensus store is open, the server listens, and every outbound link is up. */
  ready(): boolean {
    return this.state === 'RUNNING' && [...this.links.values()].every((l) => l.session > 0);
  }

  /** SIGTERM: stop taking new data, make applied data durable, close. */
  async drain(graceMs: number = DEFAULT_DRAIN_GRACE_MS): Promise<void> {
    if (this.state === 'DRAINING' || this.state === 'STOPPED') return;
    this.state = 'DRAINING';
    this.logger.info({ graceMs }, 'draining');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DrainTimeoutError(`drain did not finish within ${graceMs} ms`)), graceMs);
      timer.unref();
    });
    try {
      await Promise.race([this.stop(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stop everything now (after a drain, or on a failed start). */
  async stop(): Promise<void> {
    if (this.state === 'STOPPED') return;
    this.state = 'DRAINING';
    // A reconfiguration under way finishes first (its stream stops are bounded by STREAM_DRAIN_GRACE_MS).
    await this.reconciling;
    // Senders first (no new frames), then receivers checkpoint what they applied.
    for (const slot of this.slots) {
      slot.abort.abort();
      slot.sender?.stop();
    }
    for (const link of this.links.values()) link.close();
    this.pgWalMetrics.close();
    await Promise.all([...this.sources.values()].map((s) => s.close()));
    await Promise.all([...this.receivers.values()].map((r) => r.close()));
    for (const link of this.inbound.values()) link.close('agent stopping');
    this.certs?.close();
    await this.admission.close();
    await Promise.all([...this.walsenders.values()].map((w) => w.close()));
    await Promise.all(this.servers.map((s) => s.close()));
    await this.http?.close();
    await this.members?.close().catch(() => {});
    await this.keeper?.close();
    await this.store?.close();
    await this.pool?.close();
    this.state = 'STOPPED';
    this.logger.info('stopped');
  }

  // ---- start ----

  private async startParts(): Promise<void> {
    const { config } = this;
    await mkdir(config.dataDir, { recursive: true });
    const tls = await readTlsFiles(config.tls, 'tls', config.source);
    const ownProblem = this.certificateProblem(tls);
    if (ownProblem !== null) throw new ConfigError(config.source, [{ path: 'tls.cert', message: ownProblem }]);
    this.store = await this.openStore();
    this.pool = new HdePool(config.hde.workers);
    this.http = await startHttpServer({ host: config.http.host, port: config.http.port, metrics: this.metrics, healthy: () => this.state !== 'STOPPED', ready: () => this.ready(), status: () => this.status(), walSpools: (id) => walSpoolOf(this.config, id) });

    // Receivers for streams with a destination here, behind the carrier server.
    for (const stream of config.streams) await this.startReceivers(stream);
    // Carrier servers: every kind hands identity-checked carriers to the same inbound links.
    const listen: Omit<ListenOptions, 'host' | 'port'> = {
      tls,
      identity: this.identity(),
      maxFrameBytes: config.amst.maxFrameBytes,
      handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      admit: (hello, peer) => this.admit(hello, peer),
      onCarrier: (carrier, hello, peer) => this.inboundLink(hello.linkId, peer, hello.capabilities).add(carrier, hello.carrierIndex),
      onRefused: (reason, remote, identity) => {
        this.metrics.protocolErrors.inc({ reason: 'handshake' });
        if (identity) this.metrics.peerIdentityRefusals.inc({ problem: identity });
        this.logger.warn({ remote, reason }, 'connection refused');
      },
    };
    this.servers.push(await this.transports.tls!.listen({ ...listen, host: config.listen.host, port: config.listen.port }));
    if (config.listenWs) this.servers.push(await this.transports.ws!.listen({ ...listen, ...config.listenWs }));
    await this.loadQuic(config);
    if (config.listenQuic) this.servers.push(await this.transports.quic!.listen({ ...listen, ...config.listenQuic }));
    this.certs = await this.watchCertificates(tls);

    // Senders for streams sourced here, one per destination, each elected.
    // Membership and leadership hang off one lease, granted again whenever it is lost.
    this.keeper = new LeaseKeeper(this.store, Math.max(1, Math.round(config.acp.leaseTtlMs / 1000)), (err) => this.logger.warn({ err: err.message }, 'lease'));
    await this.keeper.start();
    await registerMember(this.store, config.federation, this.keeper, { nodeId: config.nodeId, region: config.region, capabilities: CAPABILITIES, address: `${config.listen.host}:${this.listenPort}` }, (err) => this.logger.warn({ err: err.message }, 'membership'));
    this.members = await MemberView.open(this.store, config.federation, config.region, (err) => this.logger.error({ err: err.message }, 'member view stopped'));
    this.ownership = new ShardOwnership(this.members, config.nodeId);
    for (const stream of config.streams) this.startSenders(stream);
    this.state = 'RUNNING';
    this.logger.info({ listen: this.listenPort, ...(this.wsPort ? { listenWs: this.wsPort } : {}), ...(this.quicPort ? { listenQuic: this.quicPort } : {}), http: this.httpPort, streams: config.streams.map((s) => s.id) }, 'agent running');
  }

  /** Receivers of a stream with a destination in this region (none otherwise). */
  private async startReceivers(stream: StreamConfig): Promise<void> {
    const dest = stream.destinations.find((d) => d.region === this.config.region);
    if (!dest) return;
    // One receiver per sub-stream: a sharded objects stream has one per shard, all on one directory.
    for (const part of subStreamsOf(stream)) {
      this.receivers.set(part.id, await this.makeReceiver(stream, part, dest.path));
      this.admission.receive(part.id, stream.source.region);
    }
    // A pg-wal destination serves its spool to the local standby.
    if (stream.kind === 'pg-wal') {
      const ws = (dest as PgWalDestinationConfig).walsender;
      const server = await startWalsenderServer({ spool: dest.path, host: ws.host, port: ws.port, auth: { users: ws.users, trustCidrs: ws.trust }, maxConnections: ws.maxConnections, maxUnauthenticated: ws.maxUnauthenticated, authTimeoutMs: ws.authTimeoutMs, logger: this.logger.child({ stream: stream.id, component: 'walsender' }) });
      this.walsenders.set(stream.id, server);
      this.pgWalMetrics.watchDestination(stream.id, dest.path, server.standbys);
      this.logger.info({ stream: stream.id, port: server.port }, 'walsender endpoint listening');
    }
  }

  /** Sender slots of a stream sourced in this region, one per (sub-stream, destination), each elected. */
  private startSenders(stream: StreamConfig): void {
    if (stream.source.region !== this.config.region) return;
    for (const dest of stream.destinations) for (const part of subStreamsOf(stream)) this.startSenderSlot(stream, part, dest.region);
  }

  /**
   * The QUIC transport, loaded only when the config listens on QUIC or names
   * a quic:// endpoint (its library carries a native QUIC stack).
   */
  private async loadQuic(config: Config): Promise<void> {
    if (this.transports.quic) return;
    const wanted = config.listenQuic !== undefined || config.regions.some((r) => r.endpoints.some((e) => e.kind === 'quic'));
    if (!wanted) return;
    const { QuicTransport } = await import('../transport/quic/quic-transport.ts');
    this.transports.quic = new QuicTransport();
  }

  // ---- live reconfiguration ----

  /**
   * Apply a new config live through one reconcile path: the plan of
   * diffConfig (reconcile.ts). Streams added start, removed ones stop
   * (senders drain, receivers checkpoint and close), changed ones restart;
   * links whose peer endpoints or tuning changed dial again; every other
   * stream is left alone. A plan with refusals changes nothing: the running
   * config stays, and the refusals are logged and returned.
   */
  reconfigure(next: Config): Promise<ConfigDiff> {
    const run = this.reconciling.then(() => this.applyConfig(next));
    this.reconciling = run.catch(() => {});
    return run;
  }

  private async applyConfig(next: Config): Promise<ConfigDiff> {
    if (this.state !== 'RUNNING') throw new Error(`reconfigure: agent is ${this.state.toLowerCase()}`);
    const diff = diffConfig(this.config, next);
    if (diff.refused.length === 0) await this.loadQuic(next);
    if (diff.refused.length > 0) {
      this.metrics.configChanges.inc({ result: 'refused' });
      this.logger.error({ source: next.source, refused: diff.refused.map((r) => `${r.path}: ${r.message}`) }, 'config change refused; the running config stays');
      return diff;
    }
    this.metrics.configChanges.inc({ result: 'applied' });
    const names = (list: Array<{ id: string }>): string[] => list.map((s) => s.id);
    this.logger.info({ source: next.source, added: names(diff.added), removed: names(diff.removed), restarted: diff.restarted.map((r) => `${r.stream.id} (${r.reason})`), redial: diff.redial }, 'applying config change');

    // Stop what goes or changes (old config), drop links that redial, then start under the new config.
    const stopping = [...diff.removed, ...diff.restarted.map((r) => this.config.streams.find((s) => s.id === r.stream.id)!)];
    await Promise.all(stopping.map((stream) => this.stopStream(stream)));
    for (const region of diff.redial) {
      this.links.get(region)?.close();
      this.links.delete(region);
    }
    this.current = next;
    this.admission.reconfigure(next);
    for (const stream of [...diff.added, ...diff.restarted.map((r) => r.stream)]) {
      try {
        await this.startReceivers(stream);
        this.startSenders(stream);
      } catch (err) {
        // This stream only (its directory or walsender port failed): what of it started stops again.
        this.metrics.streamFaults.inc({ stream: stream.id, side: 'receiver', reason: 'start_failed' });
        this.logger.error({ stream: stream.id, err: (err as Error).message }, 'stream could not start after a config change; it stays stopped until the next change');
        await this.stopStream(stream).catch(() => {});
      }
    }
    return diff;
  }

  /** Stop one stream in this agent: senders drain (bounded) and resign, sources close, receivers checkpoint and close. */
  private async stopStream(stream: StreamConfig): Promise<void> {
    const slots = this.slots.filter((s) => s.stream.id === stream.id);
    await Promise.all(slots.map((slot) => drainSender(slot.sender)));
    for (const slot of slots) slot.abort.abort();
    await Promise.all(slots.map((slot) => slot.done));
    for (const slot of slots) {
      this.slots.splice(this.slots.indexOf(slot), 1);
      slot.slo.close();
      const key = sourceKey(stream, slot.part, slot.destRegion);
      await this.sources.get(key)?.close();
      this.sources.delete(key);
    }
    for (const part of subStreamsOf(stream)) {
      await this.receivers.get(part.id)?.close();
      this.receivers.delete(part.id);
      this.admission.forget(part.id);
    }
    await this.walsenders.get(stream.id)?.close();
    this.walsenders.delete(stream.id);
    this.pgWalMetrics.forget(stream.id);
    this.logger.info({ stream: stream.id }, 'stream stopped');
  }

  private async openStore(): Promise<ConsensusStore> {
    const acp = this.config.acp;
    const logger = this.logger.child({ component: 'consensus' });
    if (acp.backend === 'embedded') return EmbeddedStore.open(acp.path, { logger });
    const tls = acp.tls ? await readTlsFiles(acp.tls, 'acp.tls', this.config.source) : undefined;
    return EtcdStore.connect({ endpoints: acp.endpoints, tls, callTimeoutMs: acp.callTimeoutMs, logger, watchRestarts: this.metrics.consensusWatchRestarts });
  }

  private identity(): Identity {
    // Delivery acknowledgements, with the hold a sender may keep delivered-not-durable here.
    return { federation: this.config.federation, region: this.config.region, nodeId: this.config.nodeId, capabilities: this.options.capabilities ?? [...CAPABILITIES, deliveryCapability(receiverHoldBytes(this.config))] };
  }

  // The Hello already matched the peer's certificate (tls-transport); here: is that region one of ours?
  private admit(_hello: Hello, peer: AgentName): string | null {
    if (this.state !== 'RUNNING' && this.state !== 'STARTING') return `agent is ${this.state.toLowerCase()}`;
    if (!this.config.regions.some((r) => r.name === peer.region)) return `region "${peer.region}" is not in federation "${this.config.federation}"`;
    return null;
  }

  /** Why this agent's certificate cannot be used (it must name this agent), or null. */
  private certificateProblem(material: TlsMaterial): string | null {
    return ownIdentityProblem(pemIdentity(material.cert), { federation: this.config.federation, region: this.config.region, node: this.config.nodeId });
  }

  /** Reload certificate files when they change: the server takes the new context, new dials read it. */
  private async watchCertificates(initial: TlsMaterial): Promise<CertificateReloader> {
    const reloader = new CertificateReloader({
      files: this.config.tls,
      initial,
      check: (material) => this.certificateProblem(material),
      onReload: (material) => {
        for (const server of this.servers) server.setTlsMaterial(material);
        this.metrics.certificateReloads.inc({ result: 'loaded' });
        this.logger.info({ cert: this.config.tls.certFile }, 'certificates reloaded');
      },
      onRejected: (reason) => {
        this.metrics.certificateReloads.inc({ result: 'rejected' });
        this.logger.error({ cert: this.config.tls.certFile, reason }, 'new certificates refused; keeping the old ones');
      },
    });
    await reloader.start();
    return reloader;
  }

  // ---- receiving ----

  private async makeReceiver(stream: StreamConfig, part: SubStream, path: string): Promise<StreamReceiver> {
    const { config } = this;
    await mkdir(path, { recursive: true });
    const made = this.makeSink(stream, part, path);
    const sink = this.options.wrapSink ? this.options.wrapSink(made) : made;
    return new StreamReceiver({
      streamId: part.id,
      kind: stream.kind,
      sink,
      store: this.store,
      checkpointKey: checkpointKey(config.federation, part.id, config.region),
      pool: this.pool,
      // Synchronous pg-wal: a commit on the primary waits for this checkpoint.
      checkpointIntervalMs: stream.kind === 'pg-wal' && stream.source.synchronous ? SYNC_CHECKPOINT_INTERVAL_MS : config.checkpoint.intervalMs,
      checkpointBytes: config.checkpoint.bytes,
      maxPendingBytes: receiverHoldBytes(config),
      maxFrameBytes: config.amst.maxFrameBytes,
      auditPath: this.options.audit ? join(config.dataDir, 'audit', `${part.id}.log`) : undefined,
      logger: this.logger,
      metrics: this.metrics,
    });
  }

  private makeSink(stream: StreamConfig, part: SubStream, path: string): Sink {
    // Shards share the directory: each covers its own paths and has its own temp area.
    if (stream.kind === 'objects') {
      // Stage dedup@1: the chunk index and staged chunks live outside the tree, per sub-stream.
      const chunks = { indexDir: join(this.config.dataDir, 'chunk-index', part.id), stageDir: join(this.config.dataDir, 'chunk-stage', part.id) };
      // Stage dict@1: shipped dictionaries are kept in this region's consensus store.
      const dictionaries = new DictionaryStore(this.store, this.config.federation);
      return new DirSink({ streamId: part.id, root: path, logger: this.logger, include: part.include, tempName: part.shards > 1 ? part.id : undefined, chunks, dictionaries });
    }
    return new WalSink({ streamId: stream.id, spoolDir: path });
  }

  private inboundLink(linkId: string, peer: AgentName, capabilities: readonly string[]): InboundLink {
    // One session per certified peer node: a new link id replaces the old
    // session (only a holder of that node's certificate can do that).
    const key = `${peer.region}/${peer.node}`;
    const existing = this.inbound.get(key);
    if (existing && existing.linkId === linkId && !existing.closed) return existing;
    existing?.close('replaced by a new session');
    const link = new InboundLink(peer, linkId, { onMessage: (l, env) => this.onInbound(l, env), onClosed: (l) => this.onInboundClosed(key, l) }, this.metrics, capabilities);
    this.inbound.set(key, link);
    return link;
  }

  private onInbound(link: InboundLink, envelope: Envelope): void {
    const streamId = envelope.streamOpen?.streamId ?? envelope.data?.streamId ?? envelope.error?.streamId;
    if (envelope.ping) {
      // Answer without a probe's padding: the probe measures one direction (path-probe.ts).
      link.send({ pong: { nonce: envelope.ping.nonce, sentUnixMicros: envelope.ping.sentUnixMicros } });
      return;
    }
    if (envelope.chunkQuery) return this.onChunkQuery(link, envelope.chunkQuery);
    const receiver = streamId ? this.receivers.get(streamId) : undefined;
    if (!receiver) {
      // Retryable: a stream added live may reach the source region's config before this one's.
      if (streamId !== undefined) {
        link.send({ streamState: { streamId, durableSeq: 0, chain: Buffer.alloc(0), state: Buffer.alloc(0), more: false, refusal: `region ${this.config.region} is not a destination of stream "${streamId}"`, retryable: true } });
      }
      return;
    }
    // Only the stream's configured source region (certificate-verified) opens
    // and writes it; checked before the receiver sees anything, so a refused
    // open does not end the genuine session.
    if (envelope.streamOpen || envelope.data) {
      const refusal = this.admission.regionRefusal(link, streamId!, envelope.streamOpen ? 'open' : 'data');
      if (refusal !== null) {
        if (envelope.streamOpen) link.send({ streamState: { streamId: streamId!, durableSeq: 0, chain: Buffer.alloc(0), state: Buffer.alloc(0), more: false, refusal } });
        return;
      }
    }
    if (envelope.streamOpen) {
      // The session records the certified region, whatever the message said.
      const open = { ...envelope.streamOpen, sourceRegion: link.peerRegion };
      this.openStream(receiver, link, open).catch((err: Error) => this.logger.error({ stream: streamId, err: err.message }, 'stream open failed'));
    } else if (envelope.data) {
      receiver.onData(link, envelope.data);
    }
  }

  /** A dedup chunk query: answered by the stream's receiver, for its source region only. */
  private onChunkQuery(link: InboundLink, query: ChunkQuery): void {
    const receiver = this.receivers.get(query.streamId);
    const refusal = receiver ? this.admission.regionRefusal(link, query.streamId, 'data') : `region ${this.config.region} is not a destination of stream "${query.streamId}"`;
    if (refusal === null) return receiver!.onChunkQuery(link, query);
    link.send({ chunkHave: { streamId: query.streamId, queryId: query.queryId, count: 0, missing: Buffer.alloc(0), refusal } });
  }

  /** Open once the source region's consensus confirms the epoch (when this agent can read it). */
  private async openStream(receiver: StreamReceiver, link: InboundLink, open: StreamOpen): Promise<void> {
    let refusal: string | null;
    try {
      refusal = await this.admission.epochRefusal(link, open);
    } catch (err) {
      if (!(err instanceof SourceConsensusUnavailableError)) throw err;
      // Never guess: the sender retries on a new link, as when our own store is down.
      this.logger.error({ stream: open.streamId, err: err.message }, 'cannot verify the sender epoch; closing the link');
      link.close(err.message);
      return;
    }
    if (refusal !== null) {
      link.send({ streamState: { streamId: open.streamId, durableSeq: 0, chain: Buffer.alloc(0), state: Buffer.alloc(0), more: false, refusal } });
      return;
    }
    await receiver.open(link, open);
  }

  private onInboundClosed(key: string, link: InboundLink): void {
    if (this.inbound.get(key) === link) this.inbound.delete(key);
    for (const receiver of this.receivers.values()) {
      receiver.onLinkClosed(link).catch((err: Error) => this.logger.error({ err: err.message }, 'closing stream session failed'));
    }
  }

  // ---- sending ----

  private startSenderSlot(stream: StreamConfig, part: SubStream, destRegion: string): void {
    const slo = new ReplicationSlo(this.metrics, { stream: part.id, destination: destRegion }, stream.slo);
    const slot: SenderSlot = { stream, part, destRegion, sender: null, abort: new AbortController(), slo, done: Promise.resolve() };
    this.slots.push(slot);
    // Every error inside is handled per stream; one reaching here stops this slot only, loudly.
    slot.done = this.leadLoop(slot).catch((err: Error) => this.logger.error({ stream: part.id, destination: destRegion, err: err.message }, 'sender slot failed (a bug); this stream stops sending'));
  }

  /** Campaign for (stream, destination); send while leader; campaign again when leadership is lost. */
  private async leadLoop(slot: SenderSlot): Promise<void> {
    const { config } = this;
    const id = slot.part.id;
    const key = leaderKey(config.federation, id, slot.destRegion);
    const campaignBackoff = new Backoff({ initialMs: config.amst.initialBackoffMs, maxMs: config.amst.maxBackoffMs });
    while (!slot.abort.signal.aborted) {
      // A shard is campaigned for and sent only while the ring places it here (always, unsharded).
      let turn;
      try {
        turn = await this.ownership!.hold(slot.part, slot.abort.signal);
      } catch {
        return;
      }
      let leadership;
      try {
        leadership = await campaign(this.store, key, config.nodeId, await this.keeper!.current(), turn.signal);
      } catch (err) {
        turn.release();
        if (slot.abort.signal.aborted) return;
        if (turn.signal.aborted) continue;
        this.logger.warn({ stream: id, err: (err as Error).message }, 'campaign failed; retrying');
        await sleepMs(campaignBackoff.next());
        continue;
      }
      campaignBackoff.reset();
      this.logger.info({ stream: id, destination: slot.destRegion, epoch: leadership.epoch }, 'elected sender');
      const link = this.linkTo(slot.destRegion);
      // A paused leader fences itself; the destination's chain is checked against this region's record.
      let fenced!: (err: Error) => void;
      const fencedPromise = new Promise<Error>((resolve) => (fenced = resolve));
      const fence = new LeadershipFence(this.store, key, leadership.epoch, (why) => fenced(new Error(`fenced: ${why}`)));
      const chainCheck = sourceChainCheck(this.store, chainKey(config.federation, id, slot.destRegion), leadership.epoch, (err) => this.logger.warn({ stream: id, err: err.message }, 'chain record'));
      const sender = new StreamSender({
        streamId: id,
        kind: slot.stream.kind,
        sourceRegion: config.region,
        destRegion: slot.destRegion,
        source: this.sourceFor(slot.stream, slot.part, slot.destRegion),
        link,
        pool: this.pool,
        level: config.hde.level,
        adaptiveLevel: config.hde.adaptiveLevel,
        // WAL gains from one zstd context per session (history across frames); objects keep independent frames.
        streaming: slot.stream.kind === 'pg-wal',
        epoch: async () => leadership.epoch,
        logger: this.logger,
        metrics: this.metrics,
        maySend: process.env[FAULT_ZOMBIE_ENV] === '1' ? undefined : () => fence.maySend(),
        chainCheck,
        retry: { initialMs: config.amst.initialBackoffMs, maxMs: config.amst.maxBackoffMs },
        openTimeoutMs: config.amst.streamOpenTimeoutMs,
        delays: slot.slo,
      });
      slot.sender = sender;
      if (link.session > 0) sender.onLinkUp(link.session);
      // Stopping, or the shard moved to another member: resign, so its new owner's campaign wins.
      // (It may have moved while the campaign was being won: turn.ended has resolved then.)
      const reason = await Promise.race(process.env[FAULT_ZOMBIE_ENV] === '1' ? [turn.ended] : [leadership.lost, fencedPromise, turn.ended]);
      turn.release();
      sender.stop();
      fence.close();
      slot.sender = null;
      link.forgetStream(id);
      if (!slot.abort.signal.aborted) this.logger.warn({ stream: id, reason: reason.message }, 'leadership lost');
      await leadership.resign().catch(() => {});
    }
  }

  private linkTo(region: string): OutboundLink {
    const existing = this.links.get(region);
    if (existing) return existing;
    const { config } = this;
    // amst.transport: only that kind's endpoints (the config checked there is one); auto: all, in the order written.
    const endpoints = config.regions.find((r) => r.name === region)!.endpoints.filter((e) => config.amst.transport === 'auto' || e.kind === config.amst.transport);
    const link = new OutboundLink({
      peerRegion: region,
      endpoints,
      transports: this.transports,
      ...amstLinkOptions(config.amst),
      tls: () => this.certs!.current,
      identity: this.identity(),
      maxFrameBytes: config.amst.maxFrameBytes,
      carrierWindowBytes: config.amst.carrierWindowBytes,
      linkWindowBytes: config.amst.linkWindowBytes,
      connectTimeoutMs: config.amst.connectTimeoutMs,
      initialBackoffMs: config.amst.initialBackoffMs,
      maxBackoffMs: config.amst.maxBackoffMs,
      logger: this.logger,
      metrics: this.metrics,
      autoTransport: config.amst.transport === 'auto' ? { reprobeIntervalMs: config.amst.probeIntervalMs, probeBytes: config.amst.probeBytes } : undefined,
    });
    this.links.set(region, link);
    startAmst(link, config.amst, this.metrics, this.logger);
    const sendersOf = (): StreamSender[] => this.slots.flatMap((s) => (s.destRegion === region && s.sender ? [s.sender] : []));
    link.start({
      onUp: (session) => sendersOf().forEach((s) => s.onLinkUp(session)),
      onDown: () => sendersOf().forEach((s) => s.onLinkDown()),
      onMessage: (envelope) => {
        const streamId = envelope.streamState?.streamId ?? envelope.ack?.streamId ?? envelope.nack?.streamId ?? envelope.error?.streamId ?? envelope.chunkHave?.streamId;
        for (const s of sendersOf()) if (s.options.streamId === streamId) s.onMessage(envelope);
      },
    });
    return link;
  }

  private sourceFor(stream: StreamConfig, part: SubStream, destRegion: string): Source {
    const key = sourceKey(stream, part, destRegion);
    const existing = this.sources.get(key);
    if (existing) return existing;
    let source: Source;
    if (stream.kind === 'objects') {
      // A shard's source scans, and sends, only its shard's paths.
      source = new DirSource({
        streamId: part.id,
        root: stream.source.path,
        include: part.include,
        chunkBytes: this.config.hde.chunkBytes,
        scanIntervalMs: stream.source.scanIntervalMs,
        watch: stream.source.watch && !this.options.once,
        once: this.options.once,
        logger: this.logger,
        // Stage dict@1: the stream's dictionary lives in this region's consensus store.
        dictionaries: new DictionaryStore(this.store, this.config.federation),
      });
    } else {
      // pg-wal: one source, connection and slot per destination (see slot-name.ts).
      const c = stream.source.connection;
      const slot = destinationSlotName(stream.source.slot, destRegion, stream.destinations.findIndex((d) => d.region === destRegion));
      const log = this.logger.child({ stream: stream.id, destination: destRegion, slot });
      const wal = new WalSource({
        streamId: stream.id,
        connection: { host: c.host, port: c.port, user: c.user, password: c.password, database: c.database, applicationName: stream.source.applicationName, sslmode: c.sslmode, sslrootcert: c.sslrootcert },
        slot,
        onReconnect: (err, failure) => {
          this.pgWalMetrics.sourceError(stream.id, destRegion, failure);
          if (failure.class === 'transient') log.warn({ err: err.message, code: failure.code }, 'reconnecting to PostgreSQL');
          else log.error({ err: err.message, code: failure.code }, 'PostgreSQL refused the replication connection; retrying with backoff');
        },
      });
      this.pgWalMetrics.watchSource(stream.id, destRegion, wal);
      source = wal;
    }
    if (this.options.wrapSource) source = this.options.wrapSource(source);
    this.sources.set(key, source);
    return source;
  }
}

/** The spool and walsender users of a pg-wal stream landing in this region (served by /wal/). */
function walSpoolOf(config: Config, streamId: string): ServedSpool | undefined {
  const stream = config.streams.find((s) => s.kind === 'pg-wal' && s.id === streamId);
  const dest = stream?.destinations.find((d) => d.region === config.region) as PgWalDestinationConfig | undefined;
  return dest ? { dir: dest.path, users: dest.walsender.users } : undefined;
}

/** Wait (bounded by STREAM_DRAIN_GRACE_MS) until a sender's frames sent so far are durable at the destination. */
async function drainSender(sender: StreamSender | null): Promise<void> {
  const deadline = performance.now() + STREAM_DRAIN_GRACE_MS;
  while (sender && performance.now() < deadline) {
    const { sentSeq, durableSeq, session, halted } = sender.status();
    if (durableSeq >= sentSeq || session === 0 || halted !== null) return;
    await sleepMs(STREAM_DRAIN_POLL_MS);
  }
}

/** Sources are per sub-stream; a pg-wal stream has one per destination (its own slot). */
function sourceKey(stream: StreamConfig, part: SubStream, destRegion: string): string {
  return stream.kind === 'pg-wal' ? `${part.id}>${destRegion}` : part.id;
}
