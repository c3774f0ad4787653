// The dialing agent checks the server's certificate names the federation
// and the region it dialed. A TLS relay holding a certificate of the
// federation CA, but of region ap-south, sits where eu-west expects us-east:
// eu-west refuses it at TLS and sends nothing through it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { startFederation } from '../helpers/federation.ts';
import { startFlippingRelay } from '../helpers/relay.ts';
import { waitFor } from '../helpers/agent-process.ts';

test('the dialer refuses a server whose certificate names another region than the one dialed', { timeout: 120_000 }, async () => {
  const fed = await startFederation({ totalBytes: 256 * 1024, start: false, extraRegions: ['ap-south'] });
  // Flips nothing: a plain TLS relay that answers with ap-south's certificate and dials us-east as eu-west.
  const relay = await startFlippingRelay(fed.setup.ports.dest, fed.setup.certs['ap-south'], fed.setup.certs['eu-west'], 0);
  try {
    await fed.startThroughRelay(relay.port);
    const refusal = /server certificate names dwcp:\/\/demo\/ap-south\/ap-south-node-1, not an agent of federation "demo" region "us-east"/;
    await waitFor('eu-west to refuse the relay at dial', async () => fed.source.logs.some((l) => {
      const entry = JSON.parse(l) as { msg?: string; err?: string };
      return entry.msg === 'link connect failed' && refusal.test(entry.err ?? '');
    }), 60_000, 100);
    assert.equal((await fed.source.status()).links.every((l) => l.session === 0), true, 'no link session came up');
    assert.deepEqual(await readdir(fed.destPath), [], 'nothing reached us-east');
  } finally {
    await relay.close();
    await fed.cleanup();
  }
});
