// Step three of the config: a checked ConfigInput becomes the Config the
// code needs. Defaults are filled in here (from DEFAULTS, which the schema
// descriptions quote), paths become absolute, durations milliseconds and
// sizes bytes.

import { resolve } from 'node:path';
import type { ConfigIssue } from './config-error.ts';
import type {
  AcpConfig, Config, HostPort, PgWalDestinationConfig, RegionConfig, StreamConfig, TlsFiles,
} from './config.ts';
import { DEFAULTS, type ConfigInput } from './schema.ts';
import { parseDuration, parseSize, UnitError } from './units.ts';
import { parseEndpoint } from '../transport/endpoint.ts';
import { MIN_REPROBE_GAP_MS } from '../transport/path-choice.ts';
import type { Endpoint } from '../transport/transport.ts';

/** What the compiler needs from outside the file. */
export interface CompileContext {
  /** File path or label for messages. */
  source: string;
  /** Directory that relative paths resolve against. */
  baseDir: string;
  /** Default nodeId. */
  hostname: string;
  /** CPUs available, for the default worker count. */
  cpuCount: number;
}

type StreamInput = NonNullable<ConfigInput['streams']>[number];
type TlsInput = ConfigInput['tls'];

/**
 * Builds the Config from an input that passed the schema and cross checks;
 * unit values the schema pattern let through but that do not compile (like
 * '1.5ms') are pushed to issues.
 */
export function buildConfig(input: ConfigInput, context: CompileContext, issues: ConfigIssue[]): Config {
  // Unit conversions that report instead of throwing.
  const ms = (value: string | number, path: string) => convert(parseDuration, value, path, issues);
  const bytes = (value: string | number, path: string) => convert(parseSize, value, path, issues);
  const abs = (path: string) => resolve(context.baseDir, path);
  const dataDir = abs(input.dataDir ?? DEFAULTS.dataDir);

  // Transport, encoding, consensus, checkpoints.
  const amst = input.amst ?? {};
  if ((amst.minStreams ?? DEFAULTS.amst.minStreams) > (amst.maxStreams ?? DEFAULTS.amst.maxStreams)) {
    issues.push({ path: 'amst.minStreams', message: `must not exceed amst.maxStreams (${amst.maxStreams ?? DEFAULTS.amst.maxStreams})`, value: amst.minStreams });
  }
  const issuesBefore = issues.length;
  const probeIntervalMs = ms(amst.probeInterval ?? DEFAULTS.amst.probeInterval, 'amst.probeInterval');
  if (issues.length === issuesBefore && probeIntervalMs < MIN_REPROBE_GAP_MS) {
    issues.push({ path: 'amst.probeInterval', message: `must be at least ${MIN_REPROBE_GAP_MS / 1000}s (each probe sends amst.probeBytes per kind)`, value: amst.probeInterval });
  }
  const hde = input.hde ?? {};
  const acp = input.acp ?? {};
  const checkpoint = input.checkpoint ?? {};
  const acpCommon = {
    leaseTtlMs: ms(acp.leaseTtl ?? DEFAULTS.acp.leaseTtl, 'acp.leaseTtl'),
    callTimeoutMs: ms(acp.callTimeout ?? DEFAULTS.acp.callTimeout, 'acp.callTimeout'),
  };
  const acpConfig: AcpConfig = (acp.backend ?? DEFAULTS.acp.backend) === 'etcd'
    ? { backend: 'etcd', endpoints: acp.endpoints ?? [], ...(acp.tls ? { tls: tlsFiles(acp.tls, abs) } : {}), ...acpCommon }
    : { backend: 'embedded', path: acp.path ? abs(acp.path) : resolve(dataDir, DEFAULTS.acp.file), ...acpCommon };

  return {
    source: context.source,
    federation: input.federation,
    region: input.region,
    nodeId: input.nodeId ?? context.hostname,
    dataDir,
    listen: { host: input.listen?.host ?? DEFAULTS.listen.host, port: input.listen?.port ?? DEFAULTS.listen.port },
    ...(input.listenQuic ? { listenQuic: { host: input.listenQuic.host ?? DEFAULTS.listenQuic.host, port: input.listenQuic.port } } : {}),
    ...(input.listenWs ? { listenWs: { host: input.listenWs.host ?? DEFAULTS.listenWs.host, port: input.listenWs.port, path: input.listenWs.path ?? DEFAULTS.listenWs.path } } : {}),
    http: { host: input.http?.host ?? DEFAULTS.http.host, port: input.http?.port ?? DEFAULTS.http.port },
    tls: tlsFiles(input.tls, abs),
    regions: input.regions.map((region): RegionConfig => ({
      name: region.name,
      endpoints: region.endpoints.map(compileEndpoint),
      ...(region.consensus ? { consensus: { endpoints: region.consensus.endpoints, ...(region.consensus.tls ? { tls: tlsFiles(region.consensus.tls, abs) } : {}) } } : {}),
    })),
    amst: {
      carriers: amst.carriers ?? DEFAULTS.amst.carriers,
      carrierWindowBytes: bytes(amst.carrierWindow ?? DEFAULTS.amst.carrierWindow, 'amst.carrierWindow'),
      linkWindowBytes: bytes(amst.linkWindow ?? DEFAULTS.amst.linkWindow, 'amst.linkWindow'),
      maxFrameBytes: bytes(amst.maxFrame ?? DEFAULTS.amst.maxFrame, 'amst.maxFrame'),
      connectTimeoutMs: ms(amst.connectTimeout ?? DEFAULTS.amst.connectTimeout, 'amst.connectTimeout'),
      streamOpenTimeoutMs: ms(amst.streamOpenTimeout ?? DEFAULTS.amst.streamOpenTimeout, 'amst.streamOpenTimeout'),
      initialBackoffMs: ms(amst.initialBackoff ?? DEFAULTS.amst.initialBackoff, 'amst.initialBackoff'),
      maxBackoffMs: ms(amst.maxBackoff ?? DEFAULTS.amst.maxBackoff, 'amst.maxBackoff'),
      congestionControl: amst.congestionControl ?? DEFAULTS.amst.congestionControl,
      transport: amst.transport ?? DEFAULTS.amst.transport,
      probeIntervalMs,
      probeBytes: bytes(amst.probeBytes ?? DEFAULTS.amst.probeBytes, 'amst.probeBytes'),
      adaptive: amst.adaptive ?? DEFAULTS.amst.adaptive,
      minStreams: amst.minStreams ?? DEFAULTS.amst.minStreams,
      maxStreams: amst.maxStreams ?? DEFAULTS.amst.maxStreams,
      bandwidthCapBytesPerS: amst.bandwidthCap === undefined ? null : bytes(amst.bandwidthCap, 'amst.bandwidthCap'),
    },
    hde: {
      level: hde.level ?? DEFAULTS.hde.level,
      adaptiveLevel: hde.adaptiveLevel ?? DEFAULTS.hde.adaptiveLevel,
      workers: hde.workers ?? Math.max(1, Math.min(DEFAULTS.hde.maxWorkers, context.cpuCount)),
      chunkBytes: bytes(hde.chunk ?? DEFAULTS.hde.chunk, 'hde.chunk'),
    },
    acp: acpConfig,
    checkpoint: {
      intervalMs: ms(checkpoint.interval ?? DEFAULTS.checkpoint.interval, 'checkpoint.interval'),
      bytes: bytes(checkpoint.bytes ?? DEFAULTS.checkpoint.bytes, 'checkpoint.bytes'),
    },
    streams: (input.streams ?? []).map((stream, i) => buildStream(stream, `streams[${i}]`, dataDir, abs, ms)),
  };
}

// One stream by kind; the cross checks already made the kind's fields present.
function buildStream(
  stream: StreamInput,
  at: string,
  dataDir: string,
  abs: (path: string) => string,
  ms: (value: string | number, path: string) => number,
): StreamConfig {
  const { source } = stream;
  const slo = stream.slo ? { slo: { targetMs: ms(stream.slo.target, `${at}.slo.target`), objective: stream.slo.objective ?? DEFAULTS.slo.objective } } : {};
  if (stream.kind === 'objects') {
    return {
      id: stream.id,
      kind: 'objects',
      source: {
        region: source.region,
        path: abs(source.path ?? ''),
        scanIntervalMs: ms(source.scanInterval ?? DEFAULTS.objects.scanInterval, `${at}.source.scanInterval`),
        watch: source.watch ?? DEFAULTS.objects.watch,
      },
      destinations: stream.destinations.map((d) => ({ region: d.region, path: abs(d.path ?? '') })),
      shards: stream.shards ?? DEFAULTS.objects.shards,
      ...slo,
    };
  }
  const connection = source.connection!;
  return {
    id: stream.id,
    kind: 'pg-wal',
    source: {
      region: source.region,
      connection: {
        host: connection.host,
        port: connection.port ?? DEFAULTS.pgWal.port,
        user: connection.user,
        ...(connection.password === undefined ? {} : { password: connection.password }),
        database: connection.database ?? DEFAULTS.pgWal.database,
        sslmode: connection.sslmode ?? DEFAULTS.pgWal.sslmode,
        ...(connection.sslrootcert === undefined ? {} : { sslrootcert: abs(connection.sslrootcert) }),
      },
      // Slot names allow '_' but not '-'.
      slot: source.slot ?? `${DEFAULTS.pgWal.slotPrefix}${stream.id.replaceAll('-', '_')}`,
      synchronous: source.synchronous ?? false,
      applicationName: source.applicationName ?? `${DEFAULTS.pgWal.slotPrefix}${stream.id.replaceAll('-', '_')}`,
    },
    destinations: stream.destinations.map((d, i): PgWalDestinationConfig => ({
      region: d.region,
      path: d.path ? abs(d.path) : resolve(dataDir, DEFAULTS.pgWal.spoolDir, stream.id),
      walsender: {
        host: d.walsender?.host ?? DEFAULTS.pgWal.walsender.host,
        port: d.walsender?.port ?? DEFAULTS.pgWal.walsender.port,
        users: { ...(d.walsender?.users ?? {}) },
        trust: [...(d.walsender?.trust ?? DEFAULTS.pgWal.walsender.trust)],
        maxConnections: d.walsender?.maxConnections ?? DEFAULTS.pgWal.walsender.maxConnections,
        maxUnauthenticated: d.walsender?.maxUnauthenticated ?? DEFAULTS.pgWal.walsender.maxUnauthenticated,
        authTimeoutMs: ms(d.walsender?.authTimeout ?? DEFAULTS.pgWal.walsender.authTimeout, `${at}.destinations[${i}].walsender.authTimeout`),
      },
    })),
    ...slo,
  };
}

// TLS file paths, absolute.
function tlsFiles(tls: TlsInput, abs: (path: string) => string): TlsFiles {
  return { caFile: abs(tls.ca), certFile: abs(tls.cert), keyFile: abs(tls.key) };
}

// An endpoint the schema and cross-checks accepted (a bad one was an issue already).
function compileEndpoint(text: string): Endpoint {
  const parsed = parseEndpoint(text);
  return typeof parsed === 'string' ? { kind: 'tls', host: '', port: 0 } : parsed;
}

// A unit conversion whose failure becomes an issue (and a 0 never used).
function convert(parse: (value: string | number) => number, value: string | number, path: string, issues: ConfigIssue[]): number {
  try {
    return parse(value);
  } catch (err) {
    if (!(err instanceof UnitError)) throw err;
    issues.push({ path, message: err.reason, value });
    return 0;
  }
}
