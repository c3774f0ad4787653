// WebSocket carriers end to end: two agents replicate an objects tree
// through a real nginx (Debian's nginx-light) that terminates the hop's TLS
// with its own certificate and passes the upgrade on to the destination's
// HTTPS listener, across a restart of nginx mid-transfer (every carrier
// cut) and then a kill -9 of the destination agent. NEEDS /usr/sbin/nginx (scripts/setup.sh installs nginx-light).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { issueDevCert } from '../../src/cli/dev-pki.ts';
import { freePort } from '../../src/cli/free-port.ts';
import { auditProblems } from '../helpers/federation.ts';
import { federationOverWs, WS_PATH } from '../helpers/ws-federation.ts';
import { startNginxProxy, type NginxProxy } from '../helpers/nginx.ts';
import { waitFor } from '../helpers/agent-process.ts';

const MiB = 1024 * 1024;

test('an objects tree replicates identical through nginx over wss://, across an nginx restart and a kill -9 of the destination mid-transfer', { timeout: 600_000 }, async () => {
  const proxyPort = await freePort();
  const { fed, wsPort } = await federationOverWs(160 * MiB, proxyPort);
  let proxy: NginxProxy | undefined;
  try {
    // nginx holds a certificate of its own (no agent identity in it).
    const proxyCert = await issueDevCert(fed.setup.ca, 'proxy', null);
    const destCert = fed.setup.certs['us-east'];
    proxy = await startNginxProxy({ port: proxyPort, path: WS_PATH, backendPort: wsPort, certFile: proxyCert.certFile, keyFile: proxyCert.keyFile, backendCaFile: destCert.caFile, backendName: 'us-east' });
    await fed.dest.start();
    await fed.source.start();

    // Mid-transfer: some data arrived, not all. Then cut every carrier by restarting nginx.
    await waitFor('data flowing through nginx', async () => (await fed.dest.metric('dwcp_wire_bytes_received_total')) > 8 * MiB, 120_000, 100);
    const status = await fed.source.status();
    assert.ok(status.senders.some((s) => s.progress?.inSync !== true), 'the cut must come mid-transfer');
    await proxy.stop();
    await waitFor('the source saw its link go down', async () => fed.source.logs.some((l) => l.includes('"msg":"link down"')), 30_000, 100);
    await proxy.start();

    // Then kill -9 the destination once more has come through, and start it again.
    const before = await fed.dest.metric('dwcp_wire_bytes_received_total');
    await waitFor('data flowing again after the restart', async () => (await fed.dest.metric('dwcp_wire_bytes_received_total')) > before + 8 * MiB, 120_000, 100);
    assert.ok((await fed.source.status()).senders.some((s) => s.progress?.inSync !== true), 'the kill must come mid-transfer');
    await fed.dest.kill9();
    await fed.dest.start();

    await fed.waitInSync(300_000);
    const cmp = await compareTrees(fed.sourcePath, fed.destPath);
    assert.ok(cmp.identical, `trees differ: ${JSON.stringify(cmp).slice(0, 500)}`);
    assert.deepEqual(auditProblems(await fed.auditSeqs()), []);
    assert.ok((await fed.source.metric('dwcp_link_reconnects_total')) >= 1, 'the link reconnected after the cut');
    // The carriers came through nginx (the source knows no other way to us-east).
    await fed.cleanup();
    const upgrades = (await proxy.accessLog()).filter((l) => l.includes(`"GET ${WS_PATH} HTTP/1.1" 101`));
    assert.ok(upgrades.length >= 1, `nginx logged no WebSocket upgrade:\n${(await proxy.accessLog()).join('\n')}`);
  } finally {
    await proxy?.close();
    await fed.cleanup().catch(() => {});
  }
});

