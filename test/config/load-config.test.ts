import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/config-error.ts';
import { compileConfig, loadConfig, parseConfig } from '../../src/config/load-config.ts';
import { configJsonSchema } from '../../src/config/schema.ts';
import { twoRegionHead } from '../helpers/config-yaml.ts';

// A valid file that sets only what is required, plus one stream of each kind.
const MINIMAL = `${twoRegionHead(['[::1]:7402'])}streams:
  - id: assets
    kind: objects
    source: { region: eu-west, path: /data/assets }
    destinations:
      - { region: us-east, path: sink/assets }
  - id: main-db
    kind: pg-wal
    source:
      region: eu-west
      connection: { host: 127.0.0.1, user: replicator }
    destinations:
      - region: us-east
`;

const HOST = { env: {}, hostname: 'host-a', cpuCount: 2 };

// Runs fn and returns the ConfigError it throws (fails when it does not throw one).
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err;
  }
  assert.fail('expected a ConfigError, nothing was thrown');
}

// Every expected line must be one of the error's lines.
function assertHasLines(err: ConfigError, expected: string[]): void {
  const lines = err.message.split('\n');
  for (const line of expected) assert.ok(lines.includes(line), `missing line:\n  ${line}\nin:\n${err.message}`);
}

// The minimal file with YAML lines appended at the top level.
function withTop(extra: string): string {
  return `${MINIMAL}\n${extra}\n`;
}

test('a minimal file compiles with every default filled in', () => {
  const config = parseConfig(MINIMAL, '/etc/dwcp/dwcp.yaml', HOST);
  assert.equal(config.source, '/etc/dwcp/dwcp.yaml');
  assert.equal(config.federation, 'demo');
  assert.equal(config.region, 'eu-west');
  assert.equal(config.nodeId, 'host-a');
  assert.equal(config.dataDir, '/var/lib/dwcp');
  assert.deepEqual(config.listen, { host: '0.0.0.0', port: 7400 });
  assert.deepEqual(config.http, { host: '0.0.0.0', port: 9464 });
  // Relative paths resolve against the file's directory.
  assert.deepEqual(config.tls, { caFile: '/etc/dwcp/tls/ca.crt', certFile: '/etc/dwcp/tls/tls.crt', keyFile: '/etc/dwcp/tls/tls.key' });
  assert.deepEqual(config.regions, [
    { name: 'eu-west', endpoints: [{ kind: 'tls', host: '127.0.0.1', port: 7400 }] },
    { name: 'us-east', endpoints: [{ kind: 'tls', host: '127.0.0.1', port: 7401 }, { kind: 'tls', host: '::1', port: 7402 }] },
  ]);
  assert.deepEqual(config.amst, {
    carriers: 8,
    carrierWindowBytes: 4 * 1024 * 1024,
    linkWindowBytes: 32 * 1024 * 1024,
    maxFrameBytes: 32 * 1024 * 1024,
    connectTimeoutMs: 10_000,
    streamOpenTimeoutMs: 120_000,
    initialBackoffMs: 200,
    maxBackoffMs: 10_000,
    congestionControl: 'auto',
    transport: 'auto',
    probeIntervalMs: 600_000,
    probeBytes: 8 * 1024 * 1024,
    adaptive: true,
    minStreams: 1,
    maxStreams: 512,
    bandwidthCapBytesPerS: null,
  });
  assert.deepEqual(config.hde, { level: 3, adaptiveLevel: true, workers: 2, chunkBytes: 256 * 1024 });
  assert.deepEqual(config.acp, { backend: 'embedded', path: '/var/lib/dwcp/acp.log', leaseTtlMs: 10_000, callTimeoutMs: 3_000 });
  assert.deepEqual(config.checkpoint, { intervalMs: 200, bytes: 16 * 1024 * 1024 });
  assert.deepEqual(config.streams[0], {
    id: 'assets',
    kind: 'objects',
    source: { region: 'eu-west', path: '/data/assets', scanIntervalMs: 30_000, watch: true },
    destinations: [{ region: 'us-east', path: '/etc/dwcp/sink/assets' }],
    shards: 1,
  });
  assert.deepEqual(config.streams[1], {
    id: 'main-db',
    kind: 'pg-wal',
    source: {
      region: 'eu-west',
      connection: { host: '127.0.0.1', port: 5432, user: 'replicator', database: 'postgres', sslmode: 'disable' },
      slot: 'dwcp_main_db',
      synchronous: false,
      applicationName: 'dwcp_main_db',
    },
    destinations: [{
      region: 'us-east',
      path: '/var/lib/dwcp/wal/main-db',
      walsender: { host: '127.0.0.1', port: 5433, users: {}, trust: ['127.0.0.1/32'], maxConnections: 32, maxUnauthenticated: 8, authTimeoutMs: 10_000 },
    }],
  });
});

test('the default worker count is min(4, cpus)', () => {
  assert.equal(parseConfig(MINIMAL, 'dwcp.yaml', { ...HOST, cpuCount: 1 }).hde.workers, 1);
  assert.equal(parseConfig(MINIMAL, 'dwcp.yaml', { ...HOST, cpuCount: 64 }).hde.workers, 4);
});

test('a full file compiles every option as written', () => {
  const text = `
federation: prod-eu
region: us-east
nodeId: node-7
dataDir: state
listen: { host: 10.0.0.1, port: 7500 }
http: { port: 0 }
tls: { ca: /tls/ca.crt, cert: /tls/tls.crt, key: /tls/tls.key }
regions:
  - { name: eu-west, endpoints: ["eu.example:7400"] }
  - { name: us-east, endpoints: ["us.example:7400"] }
amst:
  carriers: 1024
  carrierWindow: 1MiB
  linkWindow: 100000000
  maxFrame: 16MiB
  connectTimeout: 1m30s
  streamOpenTimeout: 45s
  initialBackoff: 50
  maxBackoff: 1m
  congestionControl: bbr
  probeInterval: 2m
  probeBytes: 1MB
  adaptive: false
  minStreams: 2
  maxStreams: 1000
  bandwidthCap: 50MB
hde: { level: -7, adaptiveLevel: false, workers: 3, chunk: 64KiB }
acp:
  backend: etcd
  endpoints: ["https://127.0.0.1:2379"]
  tls: { ca: etcd/ca.crt, cert: etcd/c.crt, key: etcd/c.key }
  leaseTtl: 5s
  callTimeout: 1500ms
checkpoint: { interval: 1s, bytes: 1MB }
streams:
  - id: db
    kind: pg-wal
    source:
      region: eu-west
      connection: { host: /var/run/postgresql, port: 5433, user: rep, password: pw, database: app, sslmode: verify-full, sslrootcert: pg/ca.crt }
      slot: my_slot
    destinations:
      - region: us-east
        path: /spool/db
        walsender: { host: 0.0.0.0, port: 6543, users: { replicator: secret }, trust: ["10.0.0.0/8", "::1/128"], maxConnections: 4, maxUnauthenticated: 2, authTimeout: 3s }
`;
  const config = parseConfig(text, '/cfg/dwcp.yaml', HOST);
  assert.equal(config.nodeId, 'node-7');
  assert.equal(config.dataDir, '/cfg/state');
  assert.deepEqual(config.listen, { host: '10.0.0.1', port: 7500 });
  assert.deepEqual(config.http, { host: '0.0.0.0', port: 0 });
  assert.deepEqual(config.amst, {
    carriers: 1024, carrierWindowBytes: 1024 * 1024, linkWindowBytes: 100_000_000, maxFrameBytes: 16 * 1024 * 1024,
    connectTimeoutMs: 90_000, streamOpenTimeoutMs: 45_000, initialBackoffMs: 50, maxBackoffMs: 60_000, congestionControl: 'bbr', transport: 'auto', probeIntervalMs: 120_000, probeBytes: 1_000_000,
    adaptive: false, minStreams: 2, maxStreams: 1000, bandwidthCapBytesPerS: 50_000_000,
  });
  assert.deepEqual(config.hde, { level: -7, adaptiveLevel: false, workers: 3, chunkBytes: 64 * 1024 });
  assert.deepEqual(config.acp, {
    backend: 'etcd',
    endpoints: ['https://127.0.0.1:2379'],
    tls: { caFile: '/cfg/etcd/ca.crt', certFile: '/cfg/etcd/c.crt', keyFile: '/cfg/etcd/c.key' },
    leaseTtlMs: 5_000,
    callTimeoutMs: 1_500,
  });
  assert.deepEqual(config.checkpoint, { intervalMs: 1_000, bytes: 1_000_000 });
  assert.deepEqual(config.streams, [{
    id: 'db',
    kind: 'pg-wal',
    source: { region: 'eu-west', connection: { host: '/var/run/postgresql', port: 5433, user: 'rep', password: 'pw', database: 'app', sslmode: 'verify-full', sslrootcert: '/cfg/pg/ca.crt' }, slot: 'my_slot', synchronous: false, applicationName: 'dwcp_db' },
    destinations: [{
      region: 'us-east', path: '/spool/db',
      walsender: { host: '0.0.0.0', port: 6543, users: { replicator: 'secret' }, trust: ['10.0.0.0/8', '::1/128'], maxConnections: 4, maxUnauthenticated: 2, authTimeoutMs: 3_000 },
    }],
  }]);
});

test('several problems are reported at once, each naming its field and value', () => {
  const text = MINIMAL
    .replace('region: eu-west\ntls', 'region: eu-north\ntls')
    .replace('- { region: us-east, path: sink/assets }', '- { region: us-est, path: sink/assets }')
    + `
amst:
  carriers: 0
  connectTimeout: 5x
  carrierWindow: 4XB
  congestionControl: vegas
hde: { level: 20, chunk: "" }
`;
  const err = configError(() => parseConfig(text, 'dwcp.yaml', HOST));
  const expected = [
    'dwcp.yaml: region: unknown region "eu-north" (known: eu-west, us-east)',
    'dwcp.yaml: amst.carriers: must be an integer >= 1 (got 0)',
    'dwcp.yaml: amst.connectTimeout: unknown duration unit "x" (known: ms, s, m, h) (got "5x")',
    'dwcp.yaml: amst.carrierWindow: unknown size unit "XB" (known: B, KiB, MiB, GiB, TiB, kB, MB, GB, TB) (got "4XB")',
    'dwcp.yaml: amst.congestionControl: must be one of auto, bbr, cubic, reno (got "vegas")',
    'dwcp.yaml: hde.level: must be an integer <= 19 (got 20)',
    'dwcp.yaml: hde.chunk: invalid size: expected a number with an optional unit (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB) like "4MiB" (got "")',
    'dwcp.yaml: streams[0].destinations[0].region: unknown region "us-est" (known: eu-west, us-east)',
  ];
  assertHasLines(err, expected);
  assert.equal(err.message.split('\n').length, expected.length, err.message);
  assert.equal(err.issues.length, expected.length);
});

test('unknown fields are errors naming them, with a suggestion for typos', () => {
  const err = configError(() => parseConfig(withTop('amst: { carrier: 4 }\nlisten: { hots: 0.0.0.0 }\nextra: 1'), 'dwcp.yaml', HOST));
  assert.match(err.message, /^dwcp\.yaml: amst\.carrier: unknown field \(did you mean "carriers"\?\)$/m);
  assert.match(err.message, /^dwcp\.yaml: listen\.hots: unknown field \(did you mean "host"\?\)$/m);
  assert.match(err.message, /^dwcp\.yaml: extra: unknown field$/m);
  assert.equal(err.issues.length, 3, err.message);
});

test('missing required fields and wrong types name the field', () => {
  const text = `
federation: Demo
regions: []
streams:
  - id: x
    kind: objects
    source: { region: eu-west, path: 5 }
    destinations: []
listen: { port: "7400" }
hde: { workers: 1.5 }
acp: { endpoints: foo }
`;
  const err = configError(() => parseConfig(text, 'dwcp.yaml', HOST));
  assertHasLines(err, [
    `dwcp.yaml: federation: must be 1..63 lowercase letters, digits or '-' (got "Demo")`,
    'dwcp.yaml: region: is required',
    'dwcp.yaml: tls: is required',
    'dwcp.yaml: regions: must not be empty (got [])',
    'dwcp.yaml: streams[0].source.path: must be a string (got 5)',
    'dwcp.yaml: streams[0].destinations: must not be empty (got [])',
    'dwcp.yaml: listen.port: must be an integer in 0..65535 (got "7400")',
    'dwcp.yaml: hde.workers: must be an integer in 1..256 (got 1.5)',
    'dwcp.yaml: acp.endpoints: must be a list (got "foo")',
  ]);
});

test('cross-field rules: unique names, source region, kinds, etcd', () => {
  const text = `
federation: demo
region: eu-west
tls: { ca: a, cert: b, key: c }
regions:
  - { name: eu-west, endpoints: ["a:1"] }
  - { name: eu-west, endpoints: ["b:70000"] }
  - { name: us-east, endpoints: ["c:1"] }
acp: { backend: etcd }
amst: { initialBackoff: 1m }
streams:
  - id: s
    kind: objects
    source: { region: eu-west, slot: x }
    destinations: [{ region: eu-west }, { region: us-east, path: p }, { region: us-east, path: q }]
  - id: s
    kind: pg-wal
    source: { region: us-east, path: /x }
    destinations: [{ region: eu-west, walsender: { trust: ["10.0.0.1/40"] } }]
`;
  const err = configError(() => parseConfig(text, 'dwcp.yaml', HOST));
  assertHasLines(err, [
    'dwcp.yaml: regions[1].name: duplicate region "eu-west" (also regions[0])',
    'dwcp.yaml: regions[1].endpoints[0]: port must be in 1..65535 (got "b:70000")',
    'dwcp.yaml: streams[1].id: duplicate stream id "s" (also streams[0])',
    'dwcp.yaml: streams[0].source.path: is required for kind objects',
    'dwcp.yaml: streams[0].source.slot: is only for kind pg-wal',
    'dwcp.yaml: streams[0].destinations[0].region: must differ from the source region "eu-west"',
    'dwcp.yaml: streams[0].destinations[0].path: is required for kind objects',
    'dwcp.yaml: streams[0].destinations[2].region: duplicate destination region "us-east" (also destinations[1])',
    'dwcp.yaml: streams[1].source.connection: is required for kind pg-wal',
    'dwcp.yaml: streams[1].source.path: is only for kind objects',
    'dwcp.yaml: streams[1].destinations[0].walsender.trust[0]: must be an address/prefix like 127.0.0.1/32 (got "10.0.0.1/40")',
    'dwcp.yaml: acp.endpoints: must not be empty when backend is etcd (got [])',
    'dwcp.yaml: amst.initialBackoff: must not exceed amst.maxBackoff (10s) (got "1m")',
  ]);
});

test('embedded-only and etcd-only ACP fields are kept apart', () => {
  const err = configError(() => parseConfig(withTop('acp: { endpoints: ["h:2379"], tls: { ca: a, cert: b, key: c } }'), 'dwcp.yaml', HOST));
  assert.deepEqual(err.issues.map((i) => `${i.path}: ${i.message}`), ['acp.endpoints: is only for backend etcd', 'acp.tls: is only for backend etcd']);
});

test('units that pass the pattern but are not whole fail at compile, naming the field', () => {
  const err = configError(() => parseConfig(withTop('checkpoint: { interval: 1.5ms, bytes: 0.5B }'), 'dwcp.yaml', HOST));
  assert.equal(err.message, [
    'dwcp.yaml: checkpoint.interval: duration must be a whole number of milliseconds (got "1.5ms")',
    'dwcp.yaml: checkpoint.bytes: size must be a whole number of bytes (got "0.5B")',
  ].join('\n'));
});

test('environment expansion: ${NAME}, ${NAME:-default}, escapes, and unset variables', () => {
  const text = MINIMAL
    .replace('federation: demo', () => 'federation: ${FED}\nnodeId: ${NODE_NAME:-node-1}\ndataDir: "/data/${NODE_NAME:-x}/$${HOME}"')
    .replace('user: replicator', 'user: replicator, password: "${PG_PASSWORD:-}"');
  const withEnv = parseConfig(text, '/cfg/dwcp.yaml', { ...HOST, env: { FED: 'fed-a', NODE_NAME: 'worker-3', PG_PASSWORD: 's3cret' } });
  assert.equal(withEnv.federation, 'fed-a');
  assert.equal(withEnv.nodeId, 'worker-3');
  assert.equal(withEnv.dataDir, '/data/worker-3/${HOME}');
  const pg = withEnv.streams[1];
  assert.equal(pg.kind === 'pg-wal' && pg.source.connection.password, 's3cret');

  // Defaults apply when unset or empty, as in sh.
  const defaults = parseConfig(text, '/cfg/dwcp.yaml', { ...HOST, env: { FED: 'fed-a', NODE_NAME: '' } });
  assert.equal(defaults.nodeId, 'node-1');
  assert.equal(defaults.dataDir, '/data/x/${HOME}');

  // Unset without default, bad names, unterminated references.
  const bad = MINIMAL.replace('federation: demo', 'federation: ${FED}\nnodeId: "${1BAD}"\ndataDir: "/x/${OOPS"');
  const err = configError(() => parseConfig(bad, 'dwcp.yaml', { ...HOST, env: {} }));
  assert.equal(err.message, [
    'dwcp.yaml: federation: environment variable FED is not set and has no default (got "${FED}")',
    'dwcp.yaml: nodeId: invalid environment variable name "1BAD" (got "${1BAD}")',
    'dwcp.yaml: dataDir: unterminated ${ (write $${ for a literal) (got "/x/${OOPS")',
  ].join('\n'));
});

test('YAML syntax errors, duplicate keys and empty files are config errors', () => {
  assert.match(configError(() => parseConfig('federation: [demo', 'dwcp.yaml', HOST)).message, /^dwcp\.yaml: invalid YAML: .*line 1/);
  assert.match(configError(() => parseConfig('federation: a\nfederation: b\n', 'dwcp.yaml', HOST)).message, /^dwcp\.yaml: invalid YAML: Map keys must be unique/);
  assert.equal(configError(() => parseConfig('# nothing\n', 'dwcp.yaml', HOST)).message, 'dwcp.yaml: is empty');
  assert.equal(configError(() => parseConfig('- a\n', 'dwcp.yaml', HOST)).message, 'dwcp.yaml: must be a mapping (got ["a"])');
});

test('compileConfig takes an object (as from a CRD) and resolves against baseDir', () => {
  const config = compileConfig({
    federation: 'demo',
    region: 'a',
    tls: { ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key' },
    regions: [{ name: 'a', endpoints: ['h:1'] }],
  }, { ...HOST, baseDir: '/base' });
  assert.equal(config.tls.caFile, '/base/ca.crt');
  assert.deepEqual(config.streams, []);
  const err = configError(() => compileConfig({ federation: 'demo' }, HOST, 'DWCPFederation/demo'));
  assert.match(err.message, /^DWCPFederation\/demo: region: is required$/m);
});

test('loadConfig reads the file and its TLS files; unreadable ones name the field', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-config-'));
  try {
    await mkdir(join(dir, 'tls'));
    await writeFile(join(dir, 'tls', 'ca.crt'), 'CA');
    await writeFile(join(dir, 'tls', 'tls.crt'), 'CERT');
    const file = join(dir, 'dwcp.yaml');
    await writeFile(file, MINIMAL);

    // tls.key is missing.
    await assert.rejects(loadConfig(file, HOST), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${file}: tls.key: cannot read ${join(dir, 'tls', 'tls.key')}: ENOENT`);
      return true;
    });

    // With the key in place it loads, paths relative to the file.
    await writeFile(join(dir, 'tls', 'tls.key'), 'KEY');
    const config = await loadConfig(file, HOST);
    assert.equal(config.tls.keyFile, join(dir, 'tls', 'tls.key'));
    assert.equal(config.streams[0].destinations[0].path, join(dir, 'sink', 'assets'));

    // A missing config file names itself.
    await assert.rejects(loadConfig(join(dir, 'nope.yaml'), HOST), /nope\.yaml: cannot read config file: ENOENT/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the JSON Schema documents a default (or when it is required) for every optional leaf option', () => {
  const schema = configJsonSchema();
  const undocumented: string[] = [];
  const visit = (node: Record<string, unknown>, path: string, required: boolean) => {
    const properties = node.properties as Record<string, Record<string, unknown>> | undefined;
    const items = node.items as Record<string, unknown> | undefined;
    if (properties && Object.keys(properties).length > 0) {
      const req = new Set((node.required as string[] | undefined) ?? []);
      for (const [key, child] of Object.entries(properties)) visit(child, path ? `${path}.${key}` : key, req.has(key));
    } else if (items?.properties) {
      visit(items, `${path}[]`, true);
    } else if (!required && !/Default |Required/.test(String(node.description ?? ''))) {
      undocumented.push(path);
    }
  };
  visit(schema, '', true);
  assert.deepEqual(undocumented, []);
  // Durations and sizes are int-or-string, as CRD structural schemas need.
  const amst = (schema.properties as Record<string, Record<string, Record<string, Record<string, unknown>>>>).amst.properties;
  assert.equal(amst.connectTimeout['x-kubernetes-int-or-string'], true);
  assert.equal(amst.connectTimeout.default, '10s');
  assert.equal(amst.carriers.default, 8);
});
