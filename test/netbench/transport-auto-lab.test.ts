// amst.transport auto between two real agents over the emulated WAN
// (netbench/lab.ts: two network namespaces, the TUN link emulator), with
// iptables in the destination's namespace deciding what passes:
// - UDP dropped: the QUIC endpoint is listed first and the destination
//   listens on it, yet the link ends on TLS (reason only_reachable) and the
//   tree replicates identical;
// - only an HTTP proxy passes (a real nginx in the destination's namespace;
//   the agent's TLS port and all UDP dropped): the link ends on WebSocket;
// - QUIC over the intercontinental profile (100 ms RTT, 1 % loss) carries
//   a replicated tree identical.
// What is asserted is the kind chosen given what was reachable, never speed.
// NEEDS ROOT, ip netns, /dev/net/tun, iptables, the native build (the
// emulator) and /usr/sbin/nginx: without them the tests fail saying what is
// missing. Namespaces (and their iptables rules) go with lab.close().

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, INTERCONTINENTAL, METRO, type Lab, type LinkProfile } from '../../netbench/lab.ts';
import { LabAgent } from '../../netbench/lab-agent.ts';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { issueDevCert } from '../../src/cli/dev-pki.ts';
import { writeTwoRegion, type TwoRegion } from '../../src/cli/two-region.ts';
import { startNginxProxy, type NginxProxy } from '../helpers/nginx.ts';
import type { AgentStatus } from '../../src/agent/agent.ts';

const MiB = 1024 * 1024;
/** Tree replicated in each test (small: the tests are about which kind carries it). */
const TREE_BYTES = 6 * MiB;
/** Ports inside the destination's namespace (its own network stack: nothing else binds there). */
const QUIC_PORT = 7411;
const WS_PORT = 7412;
const PROXY_PORT = 8443;
const WS_PATH = '/dwcp';
/** Time allowed for the tree to arrive, ms. */
const SYNC_TIMEOUT_MS = 240_000;
/** Time allowed for the auto choice (dials that time out on dropped paths, then one probe per kind), ms. */
const CHOICE_TIMEOUT_MS = 120_000;
const POLL_MS = 500;
/** Bytes per second the throttled TLS port lets through, KiB (QUIC on the same path runs at several MB/s). */
const THROTTLE_KBYTES_PER_S = 200;

/** One running two-agent setup in a lab. */
interface LabFederation {
  lab: Lab;
  dir: string;
  sourcePath: string;
  destPath: string;
  fed: TwoRegion;
  source?: LabAgent;
  dest?: LabAgent;
  proxy?: NginxProxy;
}

/** Lab, tree and configs: the source lists `endpoints(addrB, tlsPort)` for the destination; the destination also listens for QUIC and WebSocket. */
async function setUp(profile: LinkProfile, endpoints: (addrB: string, tlsPort: number) => string[], transport: string): Promise<LabFederation> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-auto-lab-'));
  const sourcePath = join(dir, 'source');
  const destPath = join(dir, 'dest');
  await mkdir(destPath);
  await generateSampleTree(sourcePath, { totalBytes: TREE_BYTES });
  const lab = await createLab(profile);
  const fed = await writeTwoRegion({
    dir: join(dir, 'dwcp'), sourcePath, destPath, hosts: { source: lab.addrA, dest: lab.addrB },
    // Short connect timeouts: dropped paths fail their dials sooner.
    amstExtra: `  transport: ${transport}\n  connectTimeout: 3s\n  probeBytes: 2MiB`,
  });
  const destCfg = await readFile(fed.destConfig, 'utf8');
  await writeFile(fed.destConfig, destCfg.replace(/^listen: .*$/m, (line) => `${line}\nlistenQuic: { host: ${lab.addrB}, port: ${QUIC_PORT} }\nlistenWs: { host: 127.0.0.1, port: ${WS_PORT}, path: ${WS_PATH} }`));
  const sourceCfg = await readFile(fed.sourceConfig, 'utf8');
  const list = endpoints(lab.addrB, fed.ports.dest).map((e) => JSON.stringify(e)).join(', ');
  await writeFile(fed.sourceConfig, sourceCfg.replace(`["${lab.addrB}:${fed.ports.dest}"]`, `[${list}]`));
  return { lab, dir, sourcePath, destPath, fed };
}

/** iptables in a lab namespace, on packets arriving over the emulated link; throws with its stderr. */
function iptables(lab: Lab, ns: string, rule: string[]): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'iptables', '-A', 'INPUT', '-i', ns === lab.nsB ? 'dwcp-wan-b' : 'dwcp-wan-a', ...rule], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`iptables ${rule.join(' ')} in ${ns}: ${r.error?.message ?? r.stderr.trim()}`);
}

/** Start both agents, wait until the source says in sync and the trees are identical. */
async function replicate(f: LabFederation): Promise<void> {
  f.dest = await LabAgent.start(f.lab, f.lab.nsB, f.fed.destConfig, f.fed.ports.destHttp);
  f.source = await LabAgent.start(f.lab, f.lab.nsA, f.fed.sourceConfig, f.fed.ports.sourceHttp);
  await waitInSync(f);
}

/** Wait until the source says in sync and the trees are identical. */
async function waitInSync(f: LabFederation): Promise<void> {
  if (!f.source) throw new Error('source agent not started');
  const deadline = Date.now() + SYNC_TIMEOUT_MS;
  for (;;) {
    const inSync = await f.source.status().then((s) => s.senders[0]?.progress?.inSync === true, () => false);
    if (inSync && (await compareTrees(f.sourcePath, f.destPath)).identical) return;
    if (Date.now() > deadline) throw new Error(`not in sync after ${SYNC_TIMEOUT_MS} ms; source log:\n${f.source.tail()}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The source's link status once a probe has decided (probedAt set). */
async function decidedLink(f: LabFederation): Promise<AgentStatus['links'][number]> {
  const deadline = Date.now() + CHOICE_TIMEOUT_MS;
  for (;;) {
    const link = await f.source!.status().then((s) => s.links[0], () => undefined);
    if (link?.transportChoice.probedAt && link.transport !== null && link.transport === link.transportChoice.kind) return link;
    if (Date.now() > deadline) throw new Error(`no transport choice after ${CHOICE_TIMEOUT_MS} ms: ${JSON.stringify(link)}; source log:\n${f.source!.tail()}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function tearDown(f: LabFederation | undefined): Promise<void> {
  if (!f) return;
  for (const agent of [f.source, f.dest]) await agent?.stop().catch(() => {});
  await f.proxy?.close().catch(() => {});
  await f.lab.close();
  await rm(f.dir, { recursive: true, force: true });
}

test('auto, UDP dropped on the path: QUIC listed first and listening, the link ends on TLS and replicates', { timeout: SYNC_TIMEOUT_MS + CHOICE_TIMEOUT_MS + 60_000 }, async (t) => {
  let f: LabFederation | undefined;
  try {
    f = await setUp(METRO, (addr, tls) => [`quic://${addr}:${QUIC_PORT}`, `tls://${addr}:${tls}`], 'auto');
    iptables(f.lab, f.lab.nsB, ['-p', 'udp', '-j', 'DROP']);
    await replicate(f);
    const link = await decidedLink(f);
    t.diagnostic(`transportChoice: ${JSON.stringify(link.transportChoice)}`);
    assert.equal(link.transport, 'tls');
    assert.equal(link.transportChoice.reason, 'only_reachable');
    const byKind = Object.fromEntries(link.transportChoice.measurements.map((m) => [m.kind, m]));
    assert.equal(byKind.quic.goodputBytesPerS, null, 'the QUIC probe must have failed');
    assert.match(byKind.quic.error ?? '', /quic/i);
    assert.ok((byKind.tls.goodputBytesPerS ?? 0) > 0, 'the TLS probe measured something');
    assert.ok((await compareTrees(f.sourcePath, f.destPath)).identical);
  } finally {
    await tearDown(f);
  }
});

test('auto, only an HTTP proxy reachable: TLS and QUIC dropped, the link ends on WebSocket through nginx and replicates', { timeout: SYNC_TIMEOUT_MS + CHOICE_TIMEOUT_MS + 60_000 }, async (t) => {
  let f: LabFederation | undefined;
  try {
    f = await setUp(METRO, (addr, tls) => [`tls://${addr}:${tls}`, `quic://${addr}:${QUIC_PORT}`, `wss://${addr}:${PROXY_PORT}${WS_PATH}`], 'auto');
    // nginx in the destination's namespace, in front of the agent's loopback-only WebSocket listener.
    const proxyCert = await issueDevCert(f.fed.ca, 'proxy', null);
    const destCert = f.fed.certs['us-east'];
    const lab = f.lab;
    f.proxy = await startNginxProxy({
      port: PROXY_PORT, listenHost: lab.addrB, path: WS_PATH, backendPort: WS_PORT,
      certFile: proxyCert.certFile, keyFile: proxyCert.keyFile, backendCaFile: destCert.caFile, backendName: 'us-east',
      spawnIn: (cmd, args, options) => lab.exec(lab.nsB, cmd, args, options),
    });
    iptables(lab, lab.nsB, ['-p', 'udp', '-j', 'DROP']);
    iptables(lab, lab.nsB, ['-p', 'tcp', '--dport', String(f.fed.ports.dest), '-j', 'DROP']);
    await replicate(f);
    const link = await decidedLink(f);
    t.diagnostic(`transportChoice: ${JSON.stringify(link.transportChoice)}`);
    assert.equal(link.transport, 'ws');
    assert.equal(link.transportChoice.reason, 'only_reachable');
    const byKind = Object.fromEntries(link.transportChoice.measurements.map((m) => [m.kind, m]));
    assert.equal(byKind.tls.goodputBytesPerS, null, 'the TLS probe must have failed');
    assert.equal(byKind.quic.goodputBytesPerS, null, 'the QUIC probe must have failed');
    assert.ok((byKind.ws.goodputBytesPerS ?? 0) > 0, 'the WebSocket probe measured something');
    const upgrades = (await f.proxy.accessLog()).filter((l) => l.includes(`"GET ${WS_PATH} HTTP/1.1" 101`));
    assert.ok(upgrades.length >= 1, 'the carriers came through nginx');
  } finally {
    await tearDown(f);
  }
});

test('auto, TLS throttled on the path (iptables hashlimit), QUIC listed second: the link measures, moves to QUIC and replicates', { timeout: SYNC_TIMEOUT_MS + CHOICE_TIMEOUT_MS + 60_000 }, async (t) => {
  let f: LabFederation | undefined;
  try {
    f = await setUp(METRO, (addr, tls) => [`tls://${addr}:${tls}`, `quic://${addr}:${QUIC_PORT}`], 'auto');
    // TCP bytes to the agent above THROTTLE_KBYTES_PER_S are dropped (counted in bytes: the receive path may merge segments): TLS connects, but measures a small fraction of QUIC.
    const port = String(f.fed.ports.dest);
    iptables(f.lab, f.lab.nsB, ['-p', 'tcp', '--dport', port, '-m', 'hashlimit', '--hashlimit-name', 'dwcp-tls', '--hashlimit-mode', 'dstport',
      '--hashlimit-above', `${THROTTLE_KBYTES_PER_S}kb/s`, '--hashlimit-burst', `${THROTTLE_KBYTES_PER_S}kb`, '-j', 'DROP']);
    f.dest = await LabAgent.start(f.lab, f.lab.nsB, f.fed.destConfig, f.fed.ports.destHttp);
    f.source = await LabAgent.start(f.lab, f.lab.nsA, f.fed.sourceConfig, f.fed.ports.sourceHttp);
    const link = await decidedLink(f);
    t.diagnostic(`transportChoice: ${JSON.stringify(link.transportChoice)}`);
    assert.equal(link.transport, 'quic');
    assert.equal(link.transportChoice.reason, 'measured_best');
    await waitInSync(f);
  } finally {
    await tearDown(f);
  }
});

test('QUIC over the intercontinental emulated link carries a replicated tree identical', { timeout: SYNC_TIMEOUT_MS + 60_000 }, async (t) => {
  let f: LabFederation | undefined;
  try {
    f = await setUp(INTERCONTINENTAL, (addr) => [`quic://${addr}:${QUIC_PORT}`], 'quic');
    await replicate(f);
    const status = await f.source!.status();
    assert.equal(status.links[0].transport, 'quic');
    assert.equal(status.links[0].transportChoice.reason, 'single_kind');
    assert.ok((await compareTrees(f.sourcePath, f.destPath)).identical);
  } finally {
    await tearDown(f);
  }
});
