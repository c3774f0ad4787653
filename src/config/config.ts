// The compiled configuration: what the code needs. Every default is filled
// in, paths are absolute, durations are milliseconds (`...Ms`) and sizes are
// bytes (`...Bytes`). Built by compileConfig (load-config.ts) from what the
// user writes (ConfigInput in schema.ts).

import type { StreamKind } from '../streams/stream.ts';
import type { PG_SSL_MODES } from './schema.ts';
import type { Endpoint, TransportKind } from '../transport/transport.ts';

/** An address and TCP port. */
export interface HostPort {
  host: string;
  /** 0 means "pick a free port" where the side listens. */
  port: number;
}

/** Absolute paths of PEM files; readTlsFiles (tls-files.ts) reads them. */
export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** One region of the federation. */
export interface RegionConfig {
  name: string;
  /** Agents of the region and the carrier kind each accepts, in the order written. */
  endpoints: Endpoint[];
  /** The region's etcd, read by destinations to verify a sender's epoch; absent: not verified. */
  consensus?: { endpoints: string[]; tls?: TlsFiles };
}

/** Transport tuning (AMST). */
export interface AmstConfig {
  /** Carriers per link (1..1024). */
  carriers: number;
  carrierWindowBytes: number;
  /** Bytes sent but not yet acknowledged durable per link. */
  linkWindowBytes: number;
  maxFrameBytes: number;
  connectTimeoutMs: number;
  /** Wait for the destination's answer to a stream open, ms. */
  streamOpenTimeoutMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  congestionControl: 'auto' | 'bbr' | 'cubic' | 'reno';
  /** Carrier kind of links; auto: the kind that measures best among those the peer's endpoints offer (path-selector.ts). */
  transport: 'auto' | TransportKind;
  /** auto: measure the kinds again at least this often, ms. */
  probeIntervalMs: number;
  /** auto: probe padding sent per kind, bytes (each probe also stops after PROBE_TIMEOUT_MS). */
  probeBytes: number;
  /** True: the AMST controller picks the carrier count; false: `carriers` fixed. */
  adaptive: boolean;
  /** Carrier range of the controller (minStreams <= maxStreams). */
  minStreams: number;
  maxStreams: number;
  /** Bytes per second the link may use, or null for no cap. */
  bandwidthCapBytesPerS: number | null;
}

/** Encoding tuning (HDE). */
export interface HdeConfig {
  /** zstd level (-7..19); with adaptiveLevel, the starting level. */
  level: number;
  /** Choose the level online from where the sender waits (level-chooser.ts). */
  adaptiveLevel: boolean;
  /** Worker threads for encoders and decoders. */
  workers: number;
  chunkBytes: number;
}

/** Common ACP settings. */
interface AcpCommon {
  leaseTtlMs: number;
  callTimeoutMs: number;
}

/** The embedded single-process store. */
export interface EmbeddedAcpConfig extends AcpCommon {
  backend: 'embedded';
  /** Absolute path of the store's log file. */
  path: string;
}

/** An etcd cluster. */
export interface EtcdAcpConfig extends AcpCommon {
  backend: 'etcd';
  /** Non-empty; as written (host:port or URL). */
  endpoints: string[];
  /** Client TLS for etcd, when configured. */
  tls?: TlsFiles;
}

/** The region's consensus store (ACP). */
export type AcpConfig = EmbeddedAcpConfig | EtcdAcpConfig;

/** Checkpoint cadence: whichever comes first. */
export interface CheckpointConfig {
  intervalMs: number;
  bytes: number;
}

/** Source of an objects stream: a directory. */
export interface ObjectsSourceConfig {
  region: string;
  path: string;
  scanIntervalMs: number;
  watch: boolean;
}

/** Destination of an objects stream: a sink directory. */
export interface ObjectsDestinationConfig {
  region: string;
  path: string;
}

/** A stream's replication objective: `objective` percent of changes durable at each destination within `targetMs`. */
export interface SloConfig {
  targetMs: number;
  /** Percent (0..100). */
  objective: number;
}

/** An objects stream. */
export interface ObjectsStreamConfig {
  id: string;
  kind: Extract<StreamKind, 'objects'>;
  source: ObjectsSourceConfig;
  destinations: ObjectsDestinationConfig[];
  /** Sub-streams the tree is split into by top-level directory (1: unsharded). */
  shards: number;
  /** Replication objective; absent: none (delays are still measured). */
  slo?: SloConfig;
}

/** How the pg-wal source connects to PostgreSQL. */
export interface PgConnectionConfig {
  host: string;
  port: number;
  user: string;
  /** Absent when the connection needs none (trust, peer, .pgpass). */
  password?: string;
  database: string;
  /** TLS to PostgreSQL (libpq's sslmode). */
  sslmode: (typeof PG_SSL_MODES)[number];
  /** Absolute CA file for verify-ca / verify-full. */
  sslrootcert?: string;
}

/** Source of a pg-wal stream: a PostgreSQL primary and its slot. */
export interface PgWalSourceConfig {
  region: string;
  connection: PgConnectionConfig;
  slot: string;
  /** Synchronous mode: immediate checkpoints at the destination, immediate slot feedback. */
  synchronous: boolean;
  /** application_name of the replication connection (listed in synchronous_standby_names). */
  applicationName: string;
}

/** The walsender-compatible endpoint served to the local standby. */
export interface WalsenderConfig {
  host: string;
  port: number;
  /** user -> password. */
  users: Record<string, string>;
  /** Client networks (CIDR) allowed without a password. */
  trust: string[];
  /** Most client connections at once. */
  maxConnections: number;
  /** Most connections in startup or authentication at once. */
  maxUnauthenticated: number;
  /** Time from connect to the end of authentication, ms. */
  authTimeoutMs: number;
}

/** Destination of a pg-wal stream: a spool plus a walsender endpoint. */
export interface PgWalDestinationConfig {
  region: string;
  /** Absolute spool directory (pg_wal segment layout). */
  path: string;
  walsender: WalsenderConfig;
}

/** A pg-wal stream. */
export interface PgWalStreamConfig {
  id: string;
  kind: Extract<StreamKind, 'pg-wal'>;
  source: PgWalSourceConfig;
  destinations: PgWalDestinationConfig[];
  /** Replication objective; absent: none (delays are still measured). */
  slo?: SloConfig;
}

/** One stream, discriminated by kind. */
export type StreamConfig = ObjectsStreamConfig | PgWalStreamConfig;

/** The compiled agent configuration. */
export interface Config {
  /** Where it came from (file path or label), for messages. */
  source: string;
  federation: string;
  /** This agent's region (one of regions). */
  region: string;
  nodeId: string;
  /** Absolute data directory. */
  dataDir: string;
  listen: HostPort;
  /** The WebSocket carrier listener, when configured. */
  listenWs?: HostPort & { path: string };
  /** The QUIC carrier listener (UDP), when configured. */
  listenQuic?: HostPort;
  http: HostPort;
  tls: TlsFiles;
  regions: RegionConfig[];
  amst: AmstConfig;
  hde: HdeConfig;
  acp: AcpConfig;
  checkpoint: CheckpointConfig;
  streams: StreamConfig[];
}
