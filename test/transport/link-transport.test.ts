// amst.transport between two agents: auto connects to the first endpoint
// kind that answers and its probe finds nothing else (a dead wss://
// endpoint first, or a quic:// one nothing answers as when UDP is dropped,
// then TLS: the link ends on TLS);
// one kind uses only that kind's endpoints (TLS listed first, ws chosen:
// the link runs over WebSocket). Both replicate the tree; /status and
// dwcp_link_transport say which kind carries the link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { freePort } from '../../src/cli/free-port.ts';
import { auditProblems, type Federation } from '../helpers/federation.ts';
import { federationOverWs, WS_PATH } from '../helpers/ws-federation.ts';

const MiB = 1024 * 1024;

/** Give the source these us-east endpoints and amst lines, start both, wait until in sync, check the tree; returns the federation (caller cleans up). */
async function replicate(endpoints: (ports: { tls: number; ws: number; dead: number }) => string[], amstLine: string): Promise<Federation> {
  const { fed, wsPort } = await federationOverWs(4 * MiB);
  const ports = { tls: fed.setup.ports.dest, ws: wsPort, dead: await freePort() };
  const cfg = await readFile(fed.setup.sourceConfig, 'utf8');
  const list = endpoints(ports).map((e) => JSON.stringify(e)).join(', ');
  await writeFile(fed.setup.sourceConfig, cfg.replace(`["127.0.0.1:${ports.tls}"]`, `[${list}]`).replace(/^amst:\n/m, `amst:\n${amstLine}\n`));
  // On a failure here the caller never gets the federation: stop its agents, or they keep the test process alive.
  try {
    await fed.dest.start();
    await fed.source.start();
    await fed.waitInSync(120_000);
    assert.ok((await compareTrees(fed.sourcePath, fed.destPath)).identical, 'trees differ');
    assert.deepEqual(auditProblems(await fed.auditSeqs()), []);
  } catch (err) {
    await fed.cleanup();
    throw err;
  }
  return fed;
}

test('auto: a dead wss:// endpoint listed first, the link ends on TLS and replicates', { timeout: 300_000 }, async () => {
  const fed = await replicate((p) => [`wss://127.0.0.1:${p.dead}${WS_PATH}`, `127.0.0.1:${p.tls}`], '  transport: auto');
  try {
    assert.equal((await fed.source.status()).links[0].transport, 'tls');
    assert.equal(await fed.source.metric('dwcp_link_transport', 'kind="tls"'), 1);
    assert.equal(await fed.source.metric('dwcp_link_transport', 'kind="ws"'), 0);
  } finally {
    await fed.cleanup();
  }
});

test('transport ws: TLS listed first is skipped, the link runs over WebSocket and replicates', { timeout: 300_000 }, async () => {
  const fed = await replicate((p) => [`127.0.0.1:${p.tls}`, `wss://127.0.0.1:${p.ws}${WS_PATH}`], '  transport: ws');
  try {
    assert.equal((await fed.source.status()).links[0].transport, 'ws');
    assert.equal(await fed.source.metric('dwcp_link_transport', 'kind="ws"'), 1);
  } finally {
    await fed.cleanup();
  }
});

test('auto: a quic:// endpoint that nothing answers (UDP lost) listed first, the link ends on TLS and replicates', { timeout: 300_000 }, async () => {
  // A free UDP port with no listener stands for a path that drops UDP: the QUIC dial times out, the link moves on.
  // A short connect timeout: the test waits it out once, at the first dial.
  const fed = await replicate((p) => [`quic://127.0.0.1:${p.dead}`, `127.0.0.1:${p.tls}`], '  transport: auto\n  connectTimeout: 3s');
  try {
    assert.equal((await fed.source.status()).links[0].transport, 'tls');
    assert.equal(await fed.source.metric('dwcp_link_transport', 'kind="tls"'), 1);
    assert.equal(await fed.source.metric('dwcp_link_transport', 'kind="quic"'), 0);
  } finally {
    await fed.cleanup();
  }
});
