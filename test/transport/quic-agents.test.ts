// Two agents over QUIC only: the destination listens for QUIC carriers
// (listenQuic), the source knows it by a quic:// endpoint and
// amst.transport quic. The tree replicates identical with an exact audit,
// also when the source is killed with -9 mid-transfer and started again;
// /status and dwcp_link_transport say the link runs over QUIC.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { freePort } from '../../src/cli/free-port.ts';
import { sleep } from '../../src/cli/agent-child.ts';
import { auditProblems, startFederation } from '../helpers/federation.ts';

const MiB = 1024 * 1024;

test('QUIC only: two agents replicate a tree identical, through a kill -9 of the source', { timeout: 300_000 }, async () => {
  const fed = await startFederation({ totalBytes: 48 * MiB, start: false, carriers: 4 });
  try {
    const quicPort = await freePort();
    const destCfg = await readFile(fed.setup.destConfig, 'utf8');
    await writeFile(fed.setup.destConfig, destCfg.replace(/^listen: .*$/m, (line) => `${line}\nlistenQuic: { host: 127.0.0.1, port: ${quicPort} }`));
    const sourceCfg = await readFile(fed.setup.sourceConfig, 'utf8');
    await writeFile(fed.setup.sourceConfig, sourceCfg
      .replace(`"127.0.0.1:${fed.setup.ports.dest}"`, `"quic://127.0.0.1:${quicPort}"`)
      .replace(/^amst:\n/m, 'amst:\n  transport: quic\n'));
    await fed.dest.start();
    await fed.source.start();
    // Kill the source once something is on the way, then start it again.
    for (let i = 0; i < 200 && (await fed.source.metric('dwcp_wire_bytes_sent_total').catch(() => 0)) < 4 * MiB; i++) await sleep(50);
    await fed.source.kill9();
    await fed.source.start();
    await fed.waitInSync(180_000);
    assert.ok((await compareTrees(fed.sourcePath, fed.destPath)).identical, 'trees differ');
    assert.deepEqual(auditProblems(await fed.auditSeqs()), []);
    assert.equal((await fed.source.status()).links[0].transport, 'quic');
    assert.equal(await fed.source.metric('dwcp_link_transport', 'kind="quic"'), 1);
  } finally {
    await fed.cleanup();
  }
});
