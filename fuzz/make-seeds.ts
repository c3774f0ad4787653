// Writes the seed corpora fuzz/corpus/<target>/ from the project's own
// encoders and example files, so fuzzing starts from real messages:
//   node fuzz/make-seeds.ts
// Deterministic (fixed values throughout), and it replaces each corpus
// directory's contents. File names say what a seed is.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BodyWriter,
  CANCEL_REQUEST_CODE,
  SSL_REQUEST_CODE,
  TYPE_OID,
  authentication,
  backendKeyData,
  commandComplete,
  copyBothResponse,
  copyData,
  copyDone,
  dataRow,
  errorResponse,
  message,
  parameterStatus,
  query,
  readyForQuery,
  rowDescription,
  startupMessage,
  terminate,
  untypedMessage,
} from '../src/streams/pg-wal/pg-protocol.ts';
import { SCRAM_MECHANISM } from '../src/streams/pg-wal/scram.ts';
import { frameBytes } from '../src/wire/frame-decoder.ts';
import {
  Encoding,
  PROTOCOL_VERSION,
  envelopeCodec,
  manifestCodec,
  objectOpCodec,
  walRecordCodec,
  walResumeCodec,
  type Envelope,
} from '../src/wire/messages.ts';

const FUZZ_DIR = dirname(fileURLToPath(import.meta.url));
const REPO = join(FUZZ_DIR, '..');

const bytes = (n: number, fill: number) => Buffer.alloc(n, fill);
/** A client-first-message as ScramClient writes it, with RFC 5802's example nonce. */
const SCRAM_CLIENT_FIRST = 'n,,n=,r=fyko+d2lbbFgONRv9qkxdawL';

/** One of each Envelope body, with realistic values. */
export const SAMPLE_ENVELOPES: Record<string, Envelope> = {
  hello: { hello: { protocolVersion: PROTOCOL_VERSION, federation: 'demo', region: 'eu-west', nodeId: 'node-1', capabilities: ['zstd/1', 'zstd-stream/1', 'dedup/1'], linkId: 'f3a9c0de', carrierIndex: 3 } },
  'hello-reply': { helloReply: { accepted: true, refusal: '', protocolVersion: PROTOCOL_VERSION, federation: 'demo', region: 'us-east', nodeId: 'node-7', capabilities: ['zstd/1'] } },
  'hello-refused': { helloReply: { accepted: false, refusal: 'protocol version 2 not supported (this agent speaks 1)', protocolVersion: PROTOCOL_VERSION, federation: 'demo', region: 'us-east', nodeId: 'node-7', capabilities: [] } },
  data: { data: { streamId: 'assets', seq: 42, epoch: 3, encoding: Encoding.ZSTD, digest: bytes(32, 0xab), meta: objectOpCodec.encode({ put: { path: 'a/b.txt', version: { size: 5, mtimeUs: 1_700_000_000_000_000, mode: 0o644 }, offset: 0 } }), payload: Buffer.from('hello'), rawLength: 5, resync: false } },
  'data-wal': { data: { streamId: 'main-db', seq: 9_000_000_000, epoch: 1, encoding: Encoding.ZSTD_STREAM, digest: bytes(32, 1), meta: walRecordCodec.encode({ data: { timeline: 1, startLsn: 0x3000028, serverWalEnd: 0x3000100, serverTime: 786_000_000_000_000 } }), payload: bytes(64, 0x5a), rawLength: 8192, resync: true } },
  ack: { ack: { streamId: 'assets', durableSeq: 41, chain: bytes(32, 7) } },
  nack: { nack: { streamId: 'assets', seq: 42, reason: 'digest mismatch' } },
  'stream-open': { streamOpen: { streamId: 'main-db', kind: 'pg-wal', epoch: 5, sourceRegion: 'eu-west' } },
  'stream-state': { streamState: { streamId: 'main-db', durableSeq: 1000, chain: bytes(32, 9), state: walResumeCodec.encode({ systemId: '7322222222222222222', timeline: 2, flushLsn: 0x5000000 }), more: true, refusal: '' } },
  error: { error: { code: 'stream-halted', detail: 'sink: ENOSPC', streamId: 'assets' } },
  ping: { ping: { nonce: 12345, sentUnixMicros: 1_764_600_000_000_000 } },
  pong: { pong: { nonce: 12345, sentUnixMicros: 1_764_600_000_000_000 } },
  'chunk-query': { chunkQuery: { streamId: 'assets', queryId: 17, path: 'dir/file.bin', hashes: Buffer.concat([bytes(32, 1), bytes(32, 2), bytes(32, 3)]) } },
  'chunk-have': { chunkHave: { streamId: 'assets', queryId: 17, count: 3, missing: Buffer.from([0b101]), refusal: '' } },
};

// Seeds, by target: name -> input bytes.
function frameDecoderSeeds(): Record<string, Buffer> {
  const wire = (names: string[]) => Buffer.concat(names.map((n) => frameBytes(envelopeCodec.encode(SAMPLE_ENVELOPES[n]))));
  // [limit selector, split seed, ...wire]: selector 9 is the default 64 MiB limit, 6 is 255 bytes.
  return {
    'hello-whole': Buffer.concat([Buffer.from([9, 0]), wire(['hello'])]),
    'hello-bytewise': Buffer.concat([Buffer.from([9, 1]), wire(['hello'])]),
    'session-stride-3': Buffer.concat([Buffer.from([9, 3]), wire(['hello', 'hello-reply', 'stream-open', 'stream-state'])]),
    'data-ack-random-splits': Buffer.concat([Buffer.from([9, 77]), wire(['data', 'ack', 'data-wal', 'nack', 'ping', 'pong'])]),
    'over-limit-255': Buffer.concat([Buffer.from([6, 5]), wire(['data-wal'])]),
    'zero-length': Buffer.from([9, 0, 0, 0, 0, 0]),
    'huge-length': Buffer.from([9, 2, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
    'partial-body': Buffer.concat([Buffer.from([9, 4]), wire(['error']).subarray(0, 12)]),
  };
}

function envelopeSeeds(): Record<string, Buffer> {
  // [codec selector, ...encoded]: 0 Envelope, 1 ObjectOp, 2 Manifest, 3 WalRecord, 4 WalResume.
  const seeds: Record<string, Buffer> = {};
  for (const [name, env] of Object.entries(SAMPLE_ENVELOPES)) seeds[`envelope-${name}`] = Buffer.concat([Buffer.from([0]), envelopeCodec.encode(env)]);
  const version = { size: 1 << 20, mtimeUs: 1_700_000_000_123_456, mode: 0o100644 };
  const objectOps = {
    put: { put: { path: 'dir/file.bin', version, offset: 262_144 } },
    delete: { delete: { path: 'old/gone.txt' } },
    rename: { rename: { from: 'a.tmp', to: 'a.txt', version } },
    mkdir: { mkdir: { path: 'dir/sub', mode: 0o755, mtimeUs: 1_700_000_000_000_000 } },
    recipe: { recipe: { path: 'dir/file.bin', version, chunks: [{ hash: bytes(32, 4), length: (1 << 20) - 100, inline: false }, { hash: bytes(32, 5), length: 100, inline: true }] } },
    'chunk-data': { chunkData: { hash: bytes(32, 6) } },
  };
  for (const [name, op] of Object.entries(objectOps)) seeds[`objectop-${name}`] = Buffer.concat([Buffer.from([1]), objectOpCodec.encode(op)]);
  seeds['manifest'] = Buffer.concat([Buffer.from([2]), manifestCodec.encode({
    entries: [{ path: 'dir', version: { size: 0, mtimeUs: 1, mode: 0o40755 }, directory: true }, { path: 'dir/file.bin', version, directory: false }],
    partial: { path: 'dir/file.bin', version, offset: 524_288 },
  })]);
  const walRecords = {
    data: { data: { timeline: 1, startLsn: 0x1000000, serverWalEnd: 0x1002000, serverTime: 786_000_000_000_000 } },
    history: { history: { timeline: 2, fileName: '00000002.history' } },
    system: { system: { systemId: '7322222222222222222', timeline: 1, walSegmentSize: 16 << 20, serverVersion: 150013 } },
  };
  for (const [name, rec] of Object.entries(walRecords)) seeds[`walrecord-${name}`] = Buffer.concat([Buffer.from([3]), walRecordCodec.encode(rec)]);
  seeds['walresume'] = Buffer.concat([Buffer.from([4]), walResumeCodec.encode({ systemId: '7322222222222222222', timeline: 3, flushLsn: 0x7000000 })]);
  return seeds;
}

/** A client's side of a walsender conversation, as the standby and the replication client send it. */
function clientMessages(): Record<string, Buffer> {
  const sslRequest = untypedMessage(new BodyWriter().int32(SSL_REQUEST_CODE).build());
  const startup = startupMessage({ user: 'replicator', replication: 'true', application_name: 'standby1', database: 'replication' });
  const scramFirst = Buffer.from(SCRAM_CLIENT_FIRST);
  const saslInitial = message('p', new BodyWriter().cstring(SCRAM_MECHANISM).int32(scramFirst.length).bytes(scramFirst).build());
  const standbyStatus = copyData(new BodyWriter().byte(0x72).uint64(0x3000100).uint64(0x3000100).uint64(0x3000000).uint64(786_000_000_000_000).byte(0).build());
  const hotStandby = copyData(new BodyWriter().byte(0x68).uint64(786_000_000_000_000).int32(0).int32(0).int32(0).int32(0).build());
  return {
    'standby-session': Buffer.concat([sslRequest, startup, query('IDENTIFY_SYSTEM'), query('TIMELINE_HISTORY 2'), query('START_REPLICATION 0/3000000 TIMELINE 1'), standbyStatus, hotStandby, copyDone(), terminate()]),
    'relay-session': Buffer.concat([startup, query('SHOW wal_segment_size'), query('READ_REPLICATION_SLOT dwcp_main'), query('START_REPLICATION SLOT "dwcp_main" PHYSICAL 0/2000000;'), copyDone(), terminate()]),
    'sasl-initial': Buffer.concat([startup, saslInitial]),
    'cancel-request': untypedMessage(new BodyWriter().int32(CANCEL_REQUEST_CODE).int32(1234).int32(5678).build()),
  };
}

/** The server's side, as the replication client reads it. */
function serverMessages(): Buffer {
  return Buffer.concat([
    authentication(10, Buffer.from(`${SCRAM_MECHANISM}\0\0`)),
    authentication(0),
    parameterStatus('server_version', '15.13'),
    backendKeyData(4242, 99),
    readyForQuery(),
    rowDescription([{ name: 'systemid', typeOid: TYPE_OID.text }, { name: 'timeline', typeOid: TYPE_OID.int4 }, { name: 'xlogpos', typeOid: TYPE_OID.text }, { name: 'dbname', typeOid: TYPE_OID.text }]),
    dataRow(['7322222222222222222', '1', '0/3000100', null]),
    commandComplete('IDENTIFY_SYSTEM'),
    copyBothResponse(),
    copyData(Buffer.concat([new BodyWriter().byte(0x77).uint64(0x3000000).uint64(0x3000100).uint64(786_000_000_000_000).build(), bytes(256, 0x11)])),
    copyData(new BodyWriter().byte(0x6b).uint64(0x3000100).uint64(786_000_000_000_000).byte(1).build()),
    copyDone(),
    errorResponse('FATAL', '28P01', 'password authentication failed for user "x"'),
  ]);
}

function pgProtocolSeeds(): Record<string, Buffer> {
  // [mode, split seed, ...bytes]: mode bit 0 = startup phase (server side); mode >> 1 picks the limit (2 = 1 MiB).
  const seeds: Record<string, Buffer> = {};
  for (const [name, wire] of Object.entries(clientMessages())) {
    seeds[`server-reads-${name}`] = Buffer.concat([Buffer.from([5, 0]), wire]);
    seeds[`server-reads-${name}-split`] = Buffer.concat([Buffer.from([5, 13]), wire]);
  }
  seeds['client-reads-server'] = Buffer.concat([Buffer.from([4, 0]), serverMessages()]);
  seeds['client-reads-server-bytewise'] = Buffer.concat([Buffer.from([4, 1]), serverMessages()]);
  seeds['client-reads-server-limit-64'] = Buffer.concat([Buffer.from([2, 9]), serverMessages()]);
  return seeds;
}

function walsenderSeeds(): Record<string, Buffer> {
  // [mode, ...client bytes]: mode 1 connects from the trusted address, 0 must authenticate.
  // The target's spool: timeline 1 from 0/200000, switch to 2 at 0/210000, WAL up to 0/220000.
  const startup = startupMessage({ user: 'standby', replication: 'true', application_name: 'walreceiver' });
  const sslRequest = untypedMessage(new BodyWriter().int32(SSL_REQUEST_CODE).build());
  const standbyStatus = copyData(new BodyWriter().byte(0x72).uint64(0x210000).uint64(0x210000).uint64(0x200000).uint64(786_000_000_000_000).byte(0).build());
  const scramFirst = Buffer.from(SCRAM_CLIENT_FIRST);
  const saslInitial = message('p', new BodyWriter().cstring(SCRAM_MECHANISM).int32(scramFirst.length).bytes(scramFirst).build());
  const saslResponse = message('p', Buffer.from('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts='));
  const trusted = (wire: Buffer[]) => Buffer.concat([Buffer.from([1]), ...wire]);
  const untrusted = (wire: Buffer[]) => Buffer.concat([Buffer.from([0]), ...wire]);
  return {
    'standby-identify-history': trusted([sslRequest, startup, query('IDENTIFY_SYSTEM'), query('TIMELINE_HISTORY 2'), terminate()]),
    'standby-streams-timeline-1': trusted([startup, query('START_REPLICATION 0/200000 TIMELINE 1'), standbyStatus, copyDone(), terminate()]),
    'standby-streams-timeline-2': trusted([startup, query('START_REPLICATION SLOT "s1" PHYSICAL 0/210000 TIMELINE 2'), standbyStatus, copyDone(), terminate()]),
    'relay-show-read-slot': trusted([startup, query('SHOW wal_segment_size'), query('SHOW server_version_num'), query('READ_REPLICATION_SLOT dwcp_main;'), query(''), terminate()]),
    'unknown-command': trusted([startup, query('BASE_BACKUP'), terminate()]),
    'not-replication': trusted([startupMessage({ user: 'standby', database: 'postgres' })]),
    'gss-then-ssl': trusted([untypedMessage(new BodyWriter().int32(80877104).build()), sslRequest, startup, terminate()]),
    'cancel': trusted([untypedMessage(new BodyWriter().int32(CANCEL_REQUEST_CODE).int32(1).int32(2).build())]),
    'sasl-wrong-proof': untrusted([startup, saslInitial, saslResponse]),
    'sasl-unknown-mechanism': untrusted([startup, message('p', new BodyWriter().cstring('SCRAM-SHA-256-PLUS').int32(-1).build())]),
    'untrusted-query': untrusted([startup, query('IDENTIFY_SYSTEM')]),
  };
}

function scramSeeds(): Record<string, Buffer> {
  // client-first NUL client-final, with %n (server nonce), %c (channel binding), ,p=%p (genuine proof).
  const first = SCRAM_CLIENT_FIRST;
  const seeds: Record<string, string> = {
    genuine: `${first}\0c=%c,r=%n,p=%p`,
    'genuine-authzid': `n,a=replicator,n=,r=abc\0c=%c,r=%n,p=%p`,
    'genuine-y-flag': `y,,n=,r=rOprNGfwEbeRWgbNEkqO\0c=%c,r=%n,p=%p`,
    'wrong-proof': `${first}\0c=%c,r=%n,p=dGhpcyBpcyBub3QgdGhlIHByb29mIGF0IGFsbCEhISE=`,
    'wrong-nonce': `${first}\0c=%c,r=nonce,p=%p`,
    'wrong-binding': `${first}\0c=biws,r=%n,p=%p`,
    'extension-attribute': `n,,n=,r=abc,x=ext\0c=%c,r=%n,x=1,p=%p`,
    'first-only': first,
    'channel-binding-requested': `p=tls-server-end-point,,n=,r=abc`,
    'no-nonce': 'n,,n=,s=abc',
  };
  return Object.fromEntries(Object.entries(seeds).map(([k, v]) => [k, Buffer.from(v)]));
}

function configSeeds(): Record<string, Buffer> {
  // The README's example, the Kubernetes ConfigMap's file, and one setting every field.
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const example = /Example \(`manifests\/[a-z/-]*configmap\.yaml`[^\n]*\n\n```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  const configMap = readFileSync(join(REPO, 'manifests/overlays/eu-west/configmap.yaml'), 'utf8');
  const fromConfigMap = /dwcp\.yaml: \|\n([\s\S]*)/.exec(configMap)?.[1].replace(/^ {4}/gm, '');
  if (!example || !fromConfigMap) throw new Error('make seeds: example config not found in README.md or manifests/overlays/eu-west/configmap.yaml');
  const full = `federation: demo
region: eu-west
nodeId: \${NODE_NAME:-node-1}
dataDir: /var/lib/dwcp
listen: { host: 0.0.0.0, port: 7400 }
http: { host: 127.0.0.1, port: 9464 }
tls: { ca: tls/ca.crt, cert: tls/tls.crt, key: tls/tls.key }
regions:
  - { name: eu-west, endpoints: ["10.0.0.10:7400", "[::1]:7401"] }
  - { name: us-east, endpoints: ["dwcp.us-east.example.net:7400"] }
amst:
  carriers: 16
  carrierWindow: 4MiB
  linkWindow: 64MiB
  maxFrame: 64MiB
  connectTimeout: 10s
  initialBackoff: 200ms
  maxBackoff: 1m
  congestionControl: bbr
  adaptive: true
  minStreams: 2
  maxStreams: 256
  bandwidthCap: 50MB
hde: { level: 3, adaptiveLevel: true, workers: 2, chunk: 256KiB }
acp:
  backend: etcd
  endpoints: ["https://127.0.0.1:2379"]
  tls: { ca: tls/ca.crt, cert: tls/tls.crt, key: tls/tls.key }
  leaseTtl: 10s
  callTimeout: 3s
checkpoint: { interval: 200ms, bytes: 16MiB }
streams:
  - id: assets
    kind: objects
    shards: 4
    source: { region: eu-west, path: /data/assets, scanInterval: 30s, watch: true }
    destinations: [{ region: us-east, path: /data/assets }]
  - id: main-db
    kind: pg-wal
    source:
      region: eu-west
      connection: { host: 127.0.0.1, port: 5432, user: replicator, password: "\${PGPASSWORD:-secret}", database: postgres }
      slot: dwcp_main
      synchronous: false
      applicationName: dwcp_main
    destinations:
      - region: us-east
        path: /var/lib/dwcp/wal/main-db
        walsender: { host: 127.0.0.1, port: 5433, users: { standby: pw }, trust: [127.0.0.1/32, "::1/128"] }
`;
  const embedded = full.replace(/acp:\n(  .*\n)+/, 'acp: { backend: embedded, path: acp.log }\n');
  return {
    'readme-example': Buffer.from(example),
    'configmap': Buffer.from(fromConfigMap),
    'every-field': Buffer.from(full),
    'embedded-acp': Buffer.from(embedded),
    'anchors-and-aliases': Buffer.from(full.replace(/^tls: /m, 'tls: &tls ').replace(/^  tls: .*$/m, '  tls: *tls')),
    'errors-everywhere': Buffer.from(full.replace('carriers: 16', 'carriers: 0').replace('5s', '5x').replace('region: us-east', 'region: us-est').replace('level: 3', 'level: 20')),
    'env-unset': Buffer.from(full.replace('${NODE_NAME:-node-1}', '${UNSET_VARIABLE}')),
    // Small ones, where a mutation changes the structure rather than a value.
    'small-alias': Buffer.from('region: &r eu-west\nfederation: *r\n'),
    'small-merge-key': Buffer.from('base: &b { port: 1 }\nlisten: { <<: *b, host: h }\n'),
    'small-flow': Buffer.from('{ federation: demo, regions: [ { name: a, endpoints: [ "h:1" ] } ], streams: [] }\n'),
    'small-env': Buffer.from('nodeId: ${NODE_NAME}\ndataDir: $${literal}/${EMPTY:-/var}\n'),
    'small-tags': Buffer.from('federation: !!str 12\namst: { carriers: !!int "3" }\n'),
  };
}

/** Every target's seeds. */
export function allSeeds(): Record<string, Record<string, Buffer>> {
  return {
    'frame-decoder': frameDecoderSeeds(),
    envelope: envelopeSeeds(),
    'pg-protocol': pgProtocolSeeds(),
    walsender: walsenderSeeds(),
    scram: scramSeeds(),
    config: configSeeds(),
  };
}

if (import.meta.main) {
  for (const [target, seeds] of Object.entries(allSeeds())) {
    const dir = join(FUZZ_DIR, 'corpus', target);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const [name, data] of Object.entries(seeds)) writeFileSync(join(dir, name), data);
    console.log(`${target}: ${Object.keys(seeds).length} seeds in ${dir}`);
  }
}
