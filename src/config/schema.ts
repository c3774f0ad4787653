// The DWCP configuration schema, written once. The same TypeBox source
// validates the YAML file (load-config.ts), types what the user writes
// (ConfigInput), and is emitted as JSON Schema for the CRDs'
// openAPIV3Schema (configJsonSchema). Every option states its default in
// its description; the defaults themselves live in DEFAULTS so the schema
// text and the compiler (compile-config.ts) cannot disagree.

import { Type, type Static, type TSchema, type TRecord, type TString, type TUnsafe } from '@sinclair/typebox';
import { DURATION_PATTERN, SIZE_PATTERN, parseDuration, parseSize, UnitError } from './units.ts';
import { ENDPOINT_FORMS, ENDPOINT_PATTERN as CARRIER_ENDPOINT_PATTERN, parseEndpoint } from '../transport/endpoint.ts';

/** Defaults filled in by the compiler; strings are in the file's units. */
export const DEFAULTS = {
  dataDir: '/var/lib/dwcp',
  listen: { host: '0.0.0.0', port: 7400 },
  listenWs: { host: '0.0.0.0', path: '/dwcp' },
  listenQuic: { host: '0.0.0.0' },
  http: { host: '0.0.0.0', port: 9464 },
  amst: {
    carriers: 8,
    carrierWindow: '4MiB',
    linkWindow: '32MiB',
    maxFrame: '32MiB',
    connectTimeout: '10s',
    streamOpenTimeout: '2m',
    initialBackoff: '200ms',
    maxBackoff: '10s',
    congestionControl: 'auto',
    transport: 'auto',
    probeInterval: '10m',
    probeBytes: '8MiB',
    adaptive: true,
    minStreams: 1,
    maxStreams: 512,
  },
  hde: { level: 3, adaptiveLevel: true, maxWorkers: 4, chunk: '256KiB' },
  acp: { backend: 'embedded', file: 'acp.log', leaseTtl: '10s', callTimeout: '3s' },
  checkpoint: { interval: '200ms', bytes: '16MiB' },
  objects: { scanInterval: '30s', watch: true, shards: 1 },
  slo: { objective: 99.9 },
  pgWal: {
    port: 5432,
    database: 'postgres',
    slotPrefix: 'dwcp_',
    spoolDir: 'wal',
    sslmode: 'disable',
    walsender: { host: '127.0.0.1', port: 5433, trust: ['127.0.0.1/32'], maxConnections: 32, maxUnauthenticated: 8, authTimeout: '10s' },
  },
} as const;

/** Carriers per link: the AMST controller never goes outside this range. */
export const CARRIERS_MIN = 1;
/** Upper bound on carriers per link (the original deployment tuned up to 512). */
export const CARRIERS_MAX = 1024;
/** zstd level range accepted by HDE (negative levels are zstd's fast modes). */
export const ZSTD_LEVEL_MIN = -7;
/** Highest zstd level HDE accepts (20..22 need --ultra memory). */
export const ZSTD_LEVEL_MAX = 19;
/** Most shards an objects stream may be split into (each is a leader key, a checkpoint and a session). */
export const SHARDS_MAX = 4096;

/** The stream kinds a config may declare (same words as StreamKind). */
export const STREAM_KINDS = ['objects', 'pg-wal'] as const;
/** Congestion control choices per carrier; auto prefers bbr when the kernel has it. */
export const CONGESTION_CONTROLS = ['auto', 'bbr', 'cubic', 'reno'] as const;
/** Carrier kinds a link may use (amst.transport); auto: the kind that measures best on the path. */
export const LINK_TRANSPORTS = ['auto', 'tls', 'ws', 'quic'] as const;
/** TLS modes of the pg-wal source's connection to PostgreSQL (libpq's sslmode words). */
export const PG_SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
/** ACP backends: embedded (single process, file-backed) or etcd. */
export const ACP_BACKENDS = ['embedded', 'etcd'] as const;

// Wording for a schema node's errors ("must be ..."). A symbol key survives
// TypeBox's cloning (Type.Optional, Type.Object copy nodes) and stays out
// of the emitted JSON Schema.
const HINT = Symbol('dwcp.hint');
type Hinted = { [HINT]?: (value: unknown) => string };

/** The custom error wording for a schema node, when it has one. */
export function schemaHint(schema: object): ((value: unknown) => string) | undefined {
  return (schema as Hinted)[HINT];
}

// Attaches error wording to a schema node and returns the node.
function withHint<T extends TSchema>(schema: T, hint: (value: unknown) => string): T {
  (schema as Hinted)[HINT] = hint;
  return schema;
}

// Marks a field whose value is a secret (a password): config errors name its
// path but never print its value (config-error.ts asks isSecretField). Like
// HINT, a symbol survives TypeBox's cloning and stays out of the JSON Schema.
const SECRET = Symbol('dwcp.secret');
type Secretive = { [SECRET]?: true };

// Marks a schema node as secret (itself and everything beneath it) and returns it.
function secret<T extends TSchema>(schema: T): T {
  (schema as Secretive)[SECRET] = true;
  return schema;
}

/**
 * True when the field at these path segments (as in a ConfigIssue path) is a
 * secret field of ConfigSchema or lies inside one. Unknown paths are not
 * secret; a union follows every branch.
 */
export function isSecretField(segments: readonly (string | number)[]): boolean {
  let nodes: object[] = [ConfigSchema];
  for (const segment of segments) {
    if (nodes.some((node) => (node as Secretive)[SECRET] === true)) return true;
    nodes = nodes.flatMap((node) => childSchemas(node, segment));
    if (nodes.length === 0) return false;
  }
  return nodes.some((node) => (node as Secretive)[SECRET] === true);
}

// The schema nodes that may describe node[segment].
function childSchemas(node: object, segment: string | number): object[] {
  const s = node as { anyOf?: object[]; items?: object; properties?: Record<string, object>; additionalProperties?: unknown; patternProperties?: Record<string, object> };
  if (Array.isArray(s.anyOf)) return s.anyOf.flatMap((branch) => childSchemas(branch, segment));
  if (typeof segment === 'number') return s.items === undefined ? [] : [s.items];
  const property = s.properties !== undefined && Object.hasOwn(s.properties, segment) ? s.properties[segment] : undefined;
  if (property !== undefined) return [property];
  const out = Object.values(s.patternProperties ?? {});
  if (typeof s.additionalProperties === 'object' && s.additionalProperties !== null) out.push(s.additionalProperties);
  return out;
}

// Why a value is not a duration/size, in the words of units.ts.
function unitHint(parse: (value: string | number) => number, expected: string): (value: unknown) => string {
  return (value) => {
    if (typeof value !== 'string' && typeof value !== 'number') return expected;
    try {
      parse(value);
    } catch (err) {
      if (err instanceof UnitError) return err.reason;
    }
    return expected;
  };
}

// Description (with its default) and the default keyword for an option.
function documented(description: string, defaultValue?: string | number) {
  return defaultValue === undefined
    ? { description }
    : { description: `${description} Default ${defaultValue}.`, default: defaultValue };
}

// An integer or a string with a unit, as CRD structural schemas spell it.
function intOrString(pattern: string, description: string, defaultValue: string | undefined) {
  return Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern })], {
    ...documented(description, defaultValue),
    'x-kubernetes-int-or-string': true,
  });
}

/** A duration: '200ms', '5s', '1m', '1h', '1m30s', or an integer of milliseconds. */
function Duration(description: string, defaultValue?: string) {
  return withHint(
    intOrString(DURATION_PATTERN, description, defaultValue),
    unitHint(parseDuration, 'must be a duration like "5s", "200ms" or "1m", or a number of milliseconds'),
  );
}

/** A size: '4MiB', '256KiB', '10MB', or an integer of bytes. */
function Size(description: string, defaultValue?: string) {
  return withHint(
    intOrString(SIZE_PATTERN, description, defaultValue),
    unitHint(parseSize, 'must be a size like "4MiB" or "256KiB", or a number of bytes'),
  );
}

/** One of a fixed set of words. */
function OneOf<const T extends readonly string[]>(values: T, description: string, defaultValue?: T[number]) {
  const quoted = values.join(', ');
  return withHint(
    // Runtime: a union of literals; static type: the union of the words.
    Type.Union(values.map((v) => Type.Literal(v)), documented(description, defaultValue)) as unknown as TUnsafe<T[number]>,
    () => `must be one of ${quoted}`,
  );
}

/** A name: lowercase letters, digits and '-', as Kubernetes object names. */
function Name(description: string) {
  return withHint(
    Type.String({ pattern: '^[a-z0-9-]+$', maxLength: 63, description }),
    () => "must be 1..63 lowercase letters, digits or '-'",
  );
}

/** A TCP port; 0 asks the kernel for a free one. */
function Port(description: string, defaultValue?: number) {
  return Type.Integer({ minimum: 0, maximum: 65535, ...documented(description, defaultValue) });
}

/** A non-empty string (paths, hosts, users). */
function Text(description: string, defaultValue?: string) {
  return Type.String({ minLength: 1, ...documented(description, defaultValue) });
}

/**
 * A string-to-string map. Emitted as `additionalProperties: {type: string}`
 * (which CRD structural schemas accept), typed as a Record.
 */
function StringMap(description: string) {
  return Type.Object({}, { additionalProperties: Type.String(), description }) as unknown as TRecord<TString, TString>;
}

// Why an endpoint string is not one (parseEndpoint's words), for the schema's error.
function endpointHint(value: unknown): string {
  const parsed = typeof value === 'string' ? parseEndpoint(value) : null;
  return typeof parsed === 'string' ? parsed : `must be ${ENDPOINT_FORMS}`;
}

/** The QUIC carrier listener. */
export const QuicListenSchema = Type.Object(
  {
    host: Type.Optional(Text('Address to bind.', DEFAULTS.listenQuic.host)),
    port: Port('UDP port; 0 picks a free port. Required.'),
  },
  {
    additionalProperties: false,
    description: 'QUIC carriers (peers\' quic:// endpoints): UDP, mutual TLS at this listener; a dialer checks this agent\'s proof of identity on the stream (docs/transport.md#quic). Default: none (no QUIC listener).',
  },
);

/** The WebSocket carrier listener. */
export const WsListenSchema = Type.Object(
  {
    host: Type.Optional(Text('Address to bind.', DEFAULTS.listenWs.host)),
    port: Port('TCP port (HTTPS); 0 picks a free port. Required.'),
    path: Type.Optional(Type.String({ pattern: '^/[A-Za-z0-9_.~!$&\'()*+,;=:@%/-]*$', default: DEFAULTS.listenWs.path, description: `HTTP path of the upgrade request (what a proxy forwards). Default ${DEFAULTS.listenWs.path}.` })),
  },
  {
    additionalProperties: false,
    description: 'WebSocket carriers (peers\' wss:// endpoints): HTTPS with this agent\'s certificate, and inside the WebSocket mutual TLS end to end, so an L7 proxy between the agents sees only ciphertext (docs/transport.md). Default: none (no WebSocket listener).',
  },
);

/** An address and port to listen on. */
export const ListenSchema = (description: string, host: string, port: number) =>
  Type.Object(
    {
      host: Type.Optional(Text('Address to bind.', host)),
      port: Type.Optional(Port('TCP port; 0 picks a free port.', port)),
    },
    { additionalProperties: false, description },
  );

/** PEM files for mutual TLS; read at start, so they must be readable then. */
export const TlsSchema = Type.Object(
  {
    ca: Text('CA certificate (PEM) that peers must chain to. Required.'),
    cert: Text('This side\'s certificate chain (PEM). Required.'),
    key: Text('Private key (PEM) for cert. Required.'),
  },
  { additionalProperties: false, description: 'TLS files; relative paths resolve against the config file\'s directory.' },
);

/** One region of the federation and how to reach its agents. */
export const RegionSchema = Type.Object(
  {
    name: Name('Region name, unique in the federation. Required.'),
    endpoints: Type.Array(
      withHint(Type.String({ pattern: CARRIER_ENDPOINT_PATTERN }), endpointHint),
      { minItems: 1, description: 'Agent endpoints in this region; the scheme names the carrier kind: host:port or tls://host:port TCP+TLS, wss://host:port/path WebSocket over TLS (passes HTTP proxies; the path is the upgrade request\'s), quic://host:port QUIC. IPv6 hosts in brackets. Tried in order (a link moves to the next after a failed connect). Required, non-empty.' },
    ),
    consensus: Type.Optional(Type.Object(
      {
        endpoints: Type.Array(Text('etcd endpoint, host:port or http(s)://host:port.'), { minItems: 1, description: 'etcd endpoints of this region. Required, non-empty.' }),
        tls: Type.Optional(TlsSchema),
      },
      {
        additionalProperties: false,
        description: "This region's etcd, read (never written) by destination agents of streams sourced here: a StreamOpen is accepted only at the epoch, and from the node, that the region's leader key names. Default none: an agent certified for this region is trusted like its etcd (docs/threat-model.md).",
      },
    )),
  },
  { additionalProperties: false },
);

/** AMST: the adaptive multi-stream transport between regions. */
export const AmstSchema = Type.Object(
  {
    carriers: Type.Optional(Type.Integer({
      minimum: CARRIERS_MIN, maximum: CARRIERS_MAX, default: DEFAULTS.amst.carriers,
      description: `TCP+TLS carriers per link (${CARRIERS_MIN}..${CARRIERS_MAX}); with adaptive, the count the controller starts from. Default ${DEFAULTS.amst.carriers}.`,
    })),
    carrierWindow: Type.Optional(Size('Bytes queued per carrier.', DEFAULTS.amst.carrierWindow)),
    linkWindow: Type.Optional(Size('Bytes sent but not yet acknowledged durable, per link. Covers bandwidth x RTT (1 Gbit/s x 100 ms = 12.5 MB) with room; the destination holds up to 2x this per stream, so it also bounds both agents\' memory.', DEFAULTS.amst.linkWindow)),
    maxFrame: Type.Optional(Size('Largest frame accepted (at most amst.linkWindow; data frames are hde.chunk, chunk transfers at most 16 MiB).', DEFAULTS.amst.maxFrame)),
    connectTimeout: Type.Optional(Duration('Time allowed to connect a carrier (TCP + TLS).', DEFAULTS.amst.connectTimeout)),
    streamOpenTimeout: Type.Optional(Duration('Time a sender waits for the destination to answer a stream open (it recovers its sink first: an objects sink scans its tree); then the open is retried with backoff.', DEFAULTS.amst.streamOpenTimeout)),
    initialBackoff: Type.Optional(Duration('First retry delay of link reconnects, carrier redials and stream sessions stopped by a fault that may pass (ENOSPC, EIO, an open timeout); doubles up to maxBackoff, jittered.', DEFAULTS.amst.initialBackoff)),
    maxBackoff: Type.Optional(Duration('Longest retry delay (before jitter, which takes up to half of it away).', DEFAULTS.amst.maxBackoff)),
    congestionControl: Type.Optional(OneOf(CONGESTION_CONTROLS, 'TCP congestion control per carrier; auto picks bbr when the kernel offers it.', DEFAULTS.amst.congestionControl)),
    transport: Type.Optional(OneOf(LINK_TRANSPORTS, 'Carrier kind of links: tls, ws or quic uses only the peer region\'s endpoints of that kind (each destination region must list one); auto connects to the first endpoint that answers, then, before its streams start, measures the goodput of every kind the peer\'s endpoints offer (one probe carrier per kind, in turn, bounded by probeBytes and 5 s) and moves the link to the best (a kind unreachable on the path, e.g. QUIC where UDP is dropped, is left out); it measures again every probeInterval and when the kind fails or the path\'s RTT or loss shifts (a switch then needs two probes that agree).', DEFAULTS.amst.transport)),
    probeInterval: Type.Optional(Duration('transport auto: measure the offered kinds again at least this often (at least 30s).', DEFAULTS.amst.probeInterval)),
    probeBytes: Type.Optional(Size('transport auto: padding bytes one probe sends per kind at most (it also stops after 5 s).', DEFAULTS.amst.probeBytes)),
    adaptive: Type.Optional(Type.Boolean({ default: DEFAULTS.amst.adaptive, description: `Let the AMST controller choose the carrier count between minStreams and maxStreams (false: fixed \`carriers\`). Default ${DEFAULTS.amst.adaptive}.` })),
    minStreams: Type.Optional(Type.Integer({ minimum: CARRIERS_MIN, maximum: CARRIERS_MAX, default: DEFAULTS.amst.minStreams, description: `Fewest carriers the controller runs. Default ${DEFAULTS.amst.minStreams}.` })),
    maxStreams: Type.Optional(Type.Integer({ minimum: CARRIERS_MIN, maximum: CARRIERS_MAX, default: DEFAULTS.amst.maxStreams, description: `Most carriers the controller runs. Default ${DEFAULTS.amst.maxStreams}.` })),
    bandwidthCap: Type.Optional(Size('Bytes per second the link may use at most (e.g. "50MB"). Default none (no cap).')),
  },
  { additionalProperties: false, description: 'Transport tuning. All fields optional.' },
);

/** HDE: the layered encoder. */
export const HdeSchema = Type.Object(
  {
    level: Type.Optional(Type.Integer({
      minimum: ZSTD_LEVEL_MIN, maximum: ZSTD_LEVEL_MAX, default: DEFAULTS.hde.level,
      description: `zstd level (${ZSTD_LEVEL_MIN}..${ZSTD_LEVEL_MAX}); with adaptiveLevel, the level to start from. Default ${DEFAULTS.hde.level}.`,
    })),
    adaptiveLevel: Type.Optional(Type.Boolean({
      default: DEFAULTS.hde.adaptiveLevel,
      description: `Choose the level online (none, -1, 1, 3, 6, 9) by expected goodput: per level the smaller of the encoders' measured rate and the link's capacity divided by the measured wire ratio; one step after two agreeing intervals. Default ${DEFAULTS.hde.adaptiveLevel}.`,
    })),
    workers: Type.Optional(Type.Integer({
      minimum: 1, maximum: 256,
      description: `Encoder/decoder worker threads (1..256). Default min(${DEFAULTS.hde.maxWorkers}, CPU count).`,
    })),
    chunk: Type.Optional(Size('Object chunk size.', DEFAULTS.hde.chunk)),
  },
  { additionalProperties: false, description: 'Encoding tuning. All fields optional.' },
);

/** ACP: the region's consensus store. */
export const AcpSchema = Type.Object(
  {
    backend: Type.Optional(OneOf(ACP_BACKENDS, 'Consensus store: embedded (single process, file-backed; demo and single node) or etcd.', DEFAULTS.acp.backend)),
    path: Type.Optional(Text(`Embedded store file. Default <dataDir>/${DEFAULTS.acp.file}. Embedded backend only.`)),
    endpoints: Type.Optional(Type.Array(Text('etcd endpoint, host:port or http(s)://host:port.'), {
      description: 'etcd endpoints. Default []; required non-empty when backend is etcd.',
      default: [],
    })),
    tls: Type.Optional(TlsSchema),
    leaseTtl: Type.Optional(Duration('Leader lease time-to-live.', DEFAULTS.acp.leaseTtl)),
    callTimeout: Type.Optional(Duration('Timeout of one call to the store.', DEFAULTS.acp.callTimeout)),
  },
  { additionalProperties: false, description: 'Consensus store. All fields optional (embedded by default).' },
);

/** When the destination makes applied data durable and acknowledges it. */
export const CheckpointSchema = Type.Object(
  {
    interval: Type.Optional(Duration('How often the destination makes applied data durable and acknowledges.', DEFAULTS.checkpoint.interval)),
    bytes: Type.Optional(Size('Or after this many applied bytes, whichever comes first.', DEFAULTS.checkpoint.bytes)),
  },
  { additionalProperties: false, description: 'Checkpoint cadence. All fields optional.' },
);

/** How the pg-wal source connects to PostgreSQL (a physical replication connection). */
export const PgConnectionSchema = Type.Object(
  {
    host: Text('PostgreSQL host or unix socket directory. Required.'),
    port: Type.Optional(Port('PostgreSQL port.', DEFAULTS.pgWal.port)),
    user: Text('Role with REPLICATION. Required.'),
    password: Type.Optional(secret(Type.String({ description: 'Password; use ${ENV_VAR}. Default none.' }))),
    database: Type.Optional(Text('Database for the connection.', DEFAULTS.pgWal.database)),
    sslmode: Type.Optional(OneOf(PG_SSL_MODES, 'TLS to PostgreSQL, as libpq: disable (plain TCP), require (TLS, certificate not checked), verify-ca (certificate chains to sslrootcert), verify-full (verify-ca and the certificate names host). Anything but disable fails when the server does not offer TLS.', DEFAULTS.pgWal.sslmode)),
    sslrootcert: Type.Optional(Text('CA certificate file (PEM) that the server certificate must chain to; required for verify-ca and verify-full. Default none.')),
  },
  { additionalProperties: false },
);

/** The walsender-compatible endpoint a pg-wal destination serves to its local standby. */
export const WalsenderSchema = Type.Object(
  {
    host: Type.Optional(Text('Address to bind.', DEFAULTS.pgWal.walsender.host)),
    port: Type.Optional(Port('TCP port; 0 picks a free port.', DEFAULTS.pgWal.walsender.port)),
    users: Type.Optional(secret(StringMap('Users allowed with a password (user: password). Default {}.'))),
    trust: Type.Optional(Type.Array(
      withHint(Type.String({ pattern: '^[0-9A-Fa-f:.]+/[0-9]{1,3}$' }), () => 'must be an address/prefix like 127.0.0.1/32'),
      { description: `Client networks allowed without a password. Default [${DEFAULTS.pgWal.walsender.trust.join(', ')}].` },
    )),
    maxConnections: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULTS.pgWal.walsender.maxConnections, description: `Most client connections at once; more are refused with SQLSTATE 53300 (and logged). Default ${DEFAULTS.pgWal.walsender.maxConnections}.` })),
    maxUnauthenticated: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULTS.pgWal.walsender.maxUnauthenticated, description: `Most connections still in startup or authentication at once; more are refused with SQLSTATE 53300 (and logged). Default ${DEFAULTS.pgWal.walsender.maxUnauthenticated}.` })),
    authTimeout: Type.Optional(Duration('Time a client has from connecting to the end of authentication before it is closed.', DEFAULTS.pgWal.walsender.authTimeout)),
  },
  { additionalProperties: false },
);

/** The sending end of a stream. Kind-specific fields are checked per kind. */
export const StreamSourceSchema = Type.Object(
  {
    region: Text('Region the data comes from; must be listed in regions. Required.'),
    path: Type.Optional(Text('objects: directory to replicate. Required for objects.')),
    scanInterval: Type.Optional(Duration('objects: full manifest scan interval.', DEFAULTS.objects.scanInterval)),
    watch: Type.Optional(Type.Boolean({ description: `objects: watch the directory for changes between scans. Default ${DEFAULTS.objects.watch}.`, default: DEFAULTS.objects.watch })),
    connection: Type.Optional(PgConnectionSchema),
    slot: Type.Optional(withHint(
      Type.String({ pattern: '^[a-z0-9_]+$', maxLength: 63, description: `pg-wal: replication slot of the first destination; every further destination has its own slot <slot>_<region> (created when its sender first connects), so the primary keeps WAL until the slowest destination has it. Default ${DEFAULTS.pgWal.slotPrefix}<id with '-' as '_'>.` }),
      () => "must be 1..63 lowercase letters, digits or '_'",
    )),
    synchronous: Type.Optional(Type.Boolean({ description: 'pg-wal: synchronous mode: destinations checkpoint at once and the slot is told at once, so the primary can list applicationName in synchronous_standby_names (RPO 0 across regions). Default false.', default: false })),
    applicationName: Type.Optional(Text('pg-wal: application_name of the replication connection (what synchronous_standby_names lists).', 'dwcp_<id with \'-\' as \'_\'>')),
  },
  { additionalProperties: false },
);

/** One receiving end of a stream. */
export const StreamDestinationSchema = Type.Object(
  {
    region: Text('Destination region; listed in regions, not the source region. Required.'),
    path: Type.Optional(Text(`objects: sink directory; Required for objects. pg-wal: WAL spool directory; Default <dataDir>/${DEFAULTS.pgWal.spoolDir}/<stream id>.`)),
    walsender: Type.Optional(WalsenderSchema),
  },
  { additionalProperties: false },
);

/** A replication objective of one stream, per destination. */
export const SloSchema = Type.Object(
  {
    target: Duration('Time within which a change read at the source should be durable in each destination region (e.g. "30s"). Required.'),
    objective: Type.Optional(Type.Number({
      minimum: 0, maximum: 100, default: DEFAULTS.slo.objective,
      description: `Percent of changes that should make the target, over a rolling hour (0..100). Default ${DEFAULTS.slo.objective}.`,
    })),
  },
  { additionalProperties: false, description: 'Replication SLO: measured per destination as dwcp_replication_delay_seconds and dwcp_slo_attainment_ratio, shown in status. Default none (delays are still measured).' },
);

/** One ordered flow from one source region to one or more destination regions. */
export const StreamSchema = Type.Object(
  {
    id: Name('Stream id, unique in the federation. Required.'),
    kind: OneOf(STREAM_KINDS, 'What the stream carries. Required.'),
    source: StreamSourceSchema,
    destinations: Type.Array(StreamDestinationSchema, { minItems: 1, description: 'Where the stream goes. Required, non-empty.' }),
    shards: Type.Optional(Type.Integer({
      minimum: 1, maximum: SHARDS_MAX, default: DEFAULTS.objects.shards,
      description: `objects: split the tree by top-level directory into this many sub-streams (1..${SHARDS_MAX}), each elected, checkpointed and sent on its own, spread over the source region's live agents. Default ${DEFAULTS.objects.shards} (unsharded).`,
    })),
    slo: Type.Optional(SloSchema),
  },
  { additionalProperties: false },
);

/** The whole configuration file (and, split in two, the CRDs' spec). */
export const ConfigSchema = Type.Object(
  {
    federation: Name('Federation name. Required.'),
    region: Name("This agent's region; must be listed in regions. Required."),
    nodeId: Type.Optional(Text('This agent\'s id, unique in its region (e.g. ${NODE_NAME}). Default the host name.')),
    dataDir: Type.Optional(Text('Spool, embedded store and state.', DEFAULTS.dataDir)),
    listen: Type.Optional(ListenSchema('Agent-to-agent port.', DEFAULTS.listen.host, DEFAULTS.listen.port)),
    listenWs: Type.Optional(WsListenSchema),
    listenQuic: Type.Optional(QuicListenSchema),
    http: Type.Optional(ListenSchema('/metrics, /healthz and /readyz.', DEFAULTS.http.host, DEFAULTS.http.port)),
    tls: Type.Object(TlsSchema.properties, {
      additionalProperties: false,
      description: "This agent's mutual-TLS files (for links between regions); the certificate must name this agent in a URI SAN `dwcp://<federation>/<region>/<nodeId>` (docs/identity.md) and is reloaded when the files change. Relative paths resolve against the config file's directory.",
    }),
    regions: Type.Array(RegionSchema, { minItems: 1, description: "The federation's regions. Required, non-empty." }),
    amst: Type.Optional(AmstSchema),
    hde: Type.Optional(HdeSchema),
    acp: Type.Optional(AcpSchema),
    checkpoint: Type.Optional(CheckpointSchema),
    streams: Type.Optional(Type.Array(StreamSchema, { description: 'Streams in the federation. Default [].', default: [] })),
  },
  { additionalProperties: false, description: 'DWCP agent configuration.' },
);

/** What the user writes: the file (after ${ENV} expansion), before defaults. */
export type ConfigInput = Static<typeof ConfigSchema>;

/** The JSON Schema of the config file (plain JSON, no TypeBox symbols). */
export function configJsonSchema(): Record<string, unknown> {
  return JSON.parse(JSON.stringify(ConfigSchema)) as Record<string, unknown>;
}
