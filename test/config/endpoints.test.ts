// Endpoints name their transport: tls://, wss://host:port/path, quic://, and
// plain host:port stays TLS. Bad ones are config errors naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/config-error.ts';
import { parseConfig } from '../../src/config/load-config.ts';

const HOST = { env: {}, hostname: 'host-a', cpuCount: 2 };

// A valid file whose us-east endpoints and top-level extra lines are the test's.
function file(endpoints: string[], extra = ''): string {
  return `
federation: demo
region: eu-west
tls: { ca: ca.crt, cert: tls.crt, key: tls.key }
regions:
  - { name: eu-west, endpoints: ["127.0.0.1:7400"] }
  - name: us-east
    endpoints: [${endpoints.map((e) => JSON.stringify(e)).join(', ')}]
${extra}
`;
}

// The ConfigError lines of a file that must not load.
function errorLines(text: string): string[] {
  try {
    parseConfig(text, 'dwcp.yaml', HOST);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err.message.split('\n');
  }
  assert.fail('expected a ConfigError, the file loaded');
}

test('each scheme compiles to its transport kind; plain host:port is tls', () => {
  const config = parseConfig(file(['10.0.0.1:7400', 'tls://us.example:7401', 'wss://proxy.example:443/dwcp/us-east', 'wss://[::1]:8443', 'quic://10.0.0.2:7402']), 'dwcp.yaml', HOST);
  assert.deepEqual(config.regions[1].endpoints, [
    { kind: 'tls', host: '10.0.0.1', port: 7400 },
    { kind: 'tls', host: 'us.example', port: 7401 },
    { kind: 'ws', host: 'proxy.example', port: 443, path: '/dwcp/us-east' },
    { kind: 'ws', host: '::1', port: 8443, path: '/' },
    { kind: 'quic', host: '10.0.0.2', port: 7402 },
  ]);
  assert.equal(config.listenWs, undefined, 'no WebSocket listener unless configured');
});

test('listenWs compiles with its defaults filled in', () => {
  const config = parseConfig(file(['a:1'], 'listenWs: { port: 8443 }'), 'dwcp.yaml', HOST);
  assert.deepEqual(config.listenWs, { host: '0.0.0.0', port: 8443, path: '/dwcp' });
});

test('bad endpoints are refused naming the field, the value and what is wrong', () => {
  const lines = errorLines(file(['ws://a:80/x', 'http://a:80', 'tls://a:7400/path', 'wss://a:70000/x', 'just-a-host', 'quic://a:0']));
  const at = (j: number): string => `dwcp.yaml: regions[1].endpoints[${j}]`;
  for (const expected of [
    `${at(0)}: scheme "ws://" is not one of tls://, wss://, quic:// (plain ws:// is not offered: carriers always run over TLS, use wss://) (got "ws://a:80/x")`,
    `${at(1)}: scheme "http://" is not one of tls://, wss://, quic:// (got "http://a:80")`,
    `${at(2)}: a path is only for wss:// endpoints (got "tls://a:7400/path")`,
    `${at(3)}: port must be in 1..65535 (got "wss://a:70000/x")`,
    `${at(4)}: must be host:port, tls://host:port, wss://host:port/path or quic://host:port (IPv6 hosts in brackets) (got "just-a-host")`,
    `${at(5)}: port must be in 1..65535 (got "quic://a:0")`,
  ]) assert.ok(lines.includes(expected), `missing line:\n  ${expected}\nin:\n${lines.join('\n')}`);
});

test('listenWs without a port, or with a path not starting with /, is refused naming the field', () => {
  const lines = errorLines(file(['a:1'], 'listenWs: { path: dwcp }'));
  assert.ok(lines.some((l) => l.startsWith('dwcp.yaml: listenWs.port:')), lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith('dwcp.yaml: listenWs.path:')), lines.join('\n'));
});

// A file whose eu-west agent sends one stream to us-east, with amst lines of the test's.
function sending(endpoints: string[], amst: string): string {
  return `${file(endpoints, `amst: { ${amst} }`)}
streams:
  - id: s
    kind: objects
    source: { region: eu-west, path: /src }
    destinations: [{ region: us-east, path: /dst }]
`;
}

test('amst.transport defaults to auto and takes one kind', () => {
  assert.equal(parseConfig(file(['a:1']), 'dwcp.yaml', HOST).amst.transport, 'auto');
  assert.equal(parseConfig(sending(['a:1', 'wss://p:443/x'], 'transport: ws'), 'dwcp.yaml', HOST).amst.transport, 'ws');
});

test('amst.transport of one kind needs an endpoint of that kind in each region this agent sends to', () => {
  const lines = errorLines(sending(['a:1', 'quic://b:7400'], 'transport: ws'));
  assert.ok(lines.includes('dwcp.yaml: regions[1].endpoints: has no wss:// endpoint, and amst.transport is ws (region "us-east" receives streams from this agent)'), lines.join('\n'));
  assert.ok(errorLines(sending(['a:1'], 'transport: udp')).some((l) => l.startsWith('dwcp.yaml: amst.transport:')));
  // A region nothing is sent to needs none.
  assert.equal(parseConfig(file(['a:1'], 'amst: { transport: quic }'), 'dwcp.yaml', HOST).amst.transport, 'quic');
});

test('amst.probeInterval below 30s is refused naming the field (every probe sends amst.probeBytes per kind)', () => {
  const lines = errorLines(file(['a:1'], 'amst: { probeInterval: 5s }'));
  assert.ok(lines.some((l) => l.startsWith('dwcp.yaml: amst.probeInterval: must be at least 30s')), lines.join('\n'));
  assert.equal(parseConfig(file(['a:1'], 'amst: { probeInterval: 30s, probeBytes: 1MiB }'), 'dwcp.yaml', HOST).amst.probeIntervalMs, 30_000);
  // An unparseable value is one issue, not two.
  assert.equal(errorLines(file(['a:1'], 'amst: { probeInterval: soon }')).filter((l) => l.includes('amst.probeInterval')).length, 1);
});
