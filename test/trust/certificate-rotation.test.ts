// Certificate rotation on live agents. Each agent reads its certificates
// from a directory laid out like a mounted Kubernetes Secret (ca.crt,
// tls.crt, tls.key are symlinks through ..data, which is swapped
// atomically to a new timestamped directory). Rotated files are picked up
// without dropping links: the acceptor presents the new certificate to new
// dials, the dialer presents its new certificate when it dials again, and a
// bad new set is refused while the old one stays in use.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFederation, type Federation } from '../helpers/federation.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { createDevCa, issueDevCert, type DevCert } from '../../src/cli/dev-pki.ts';

/** PEM contents of one rotation. */
interface SecretFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** A directory shaped like a mounted Secret; write() swaps in a new version atomically. */
class SecretDir {
  readonly dir: string;
  private version = 0;

  constructor(dir: string) {
    this.dir = dir;
  }

  get caFile(): string {
    return join(this.dir, 'ca.crt');
  }
  get certFile(): string {
    return join(this.dir, 'tls.crt');
  }
  get keyFile(): string {
    return join(this.dir, 'tls.key');
  }

  async write(files: SecretFiles): Promise<void> {
    const name = `..v${++this.version}`;
    await mkdir(join(this.dir, name), { recursive: true });
    await Promise.all([writeFile(join(this.dir, name, 'ca.crt'), files.ca), writeFile(join(this.dir, name, 'tls.crt'), files.cert), writeFile(join(this.dir, name, 'tls.key'), files.key)]);
    // The kubelet's swap: a new ..data symlink renamed over the old one.
    await symlink(name, join(this.dir, '..data_tmp'));
    await rename(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.version === 1) {
      for (const f of ['ca.crt', 'tls.crt', 'tls.key']) await symlink(join('..data', f), join(this.dir, f));
    }
  }
}

async function pem(cert: DevCert): Promise<{ cert: Buffer; key: Buffer }> {
  return { cert: await readFile(cert.certFile), key: await readFile(cert.keyFile) };
}

/** Point an agent's config at a secret directory. */
async function useSecret(configPath: string, secret: SecretDir): Promise<void> {
  const yaml = await readFile(configPath, 'utf8');
  const next = yaml.replace(/^tls: .*$/m, `tls: { ca: ${secret.caFile}, cert: ${secret.certFile}, key: ${secret.keyFile} }`);
  assert.notEqual(next, yaml, 'config has a tls line');
  await writeFile(configPath, next);
}

/** SHA-256 fingerprint of the certificate a fresh TLS dial to the agent is shown. */
async function presented(port: number, client: SecretFiles): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...client, checkServerIdentity: () => undefined }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

function fingerprint(cert: Buffer): string {
  return new X509Certificate(cert).fingerprint256;
}

let files = 0;
/** A new file at eu-west reaches us-east. */
async function replicates(fed: Federation): Promise<void> {
  const name = `after-rotation-${++files}.txt`;
  await writeFile(join(fed.sourcePath, name), `${name}\n`);
  await waitFor(`${name} at us-east`, async () => (await readFile(join(fed.destPath, name), 'utf8').catch(() => '')) === `${name}\n`, 90_000, 200);
}

test('rotated certificates are picked up by live agents: new dials see the new certificate, links stay up, a bad set is refused', { timeout: 300_000 }, async () => {
  const fed = await startFederation({ totalBytes: 256 * 1024, start: false });
  try {
    const oldCa = await readFile(fed.setup.ca.caFile);
    const newCa = await createDevCa(join(fed.dir, 'tls-new'), 'dwcp-new-ca');
    const newCaPem = await readFile(newCa.caFile);
    const sourceSecret = new SecretDir(join(fed.dir, 'secret-eu-west'));
    const destSecret = new SecretDir(join(fed.dir, 'secret-us-east'));
    // us-east trusts both CAs for now, so eu-west may move to the new one.
    await sourceSecret.write({ ca: oldCa, ...(await pem(fed.setup.certs['eu-west'])) });
    await destSecret.write({ ca: Buffer.concat([oldCa, newCaPem]), ...(await pem(fed.setup.certs['us-east'])) });
    await useSecret(fed.setup.sourceConfig, sourceSecret);
    await useSecret(fed.setup.destConfig, destSecret);
    await fed.dest.start();
    await fed.source.start();
    await fed.waitInSync(120_000);
    const client = { ca: oldCa, ...(await pem(fed.setup.certs['eu-west'])) };
    assert.equal(await presented(fed.setup.ports.dest, client), fingerprint(await readFile(fed.setup.certs['us-east'].certFile)));
    const reconnects = await fed.source.metric('dwcp_link_reconnects_total');

    // 1. us-east gets a new certificate (same CA, same identity, new key).
    const destV2 = await pem(await issueDevCert(fed.setup.ca, 'us-east-v2', { federation: 'demo', region: 'us-east', node: 'us-east-node-1' }, { dir: join(fed.dir, 'tls') }));
    await destSecret.write({ ca: Buffer.concat([oldCa, newCaPem]), ...destV2 });
    await waitFor('us-east to reload', async () => (await fed.dest.metric('dwcp_certificate_reloads_total', 'result="loaded"')) >= 1, 30_000, 200);
    assert.equal(await presented(fed.setup.ports.dest, client), fingerprint(destV2.cert), 'a new dial is shown the new certificate');
    await replicates(fed);
    assert.equal(await fed.source.metric('dwcp_link_reconnects_total'), reconnects, 'the link stayed up');

    // 2. A bad set (key of another certificate) is refused; the new certificate stays in use.
    const stray = await pem(await issueDevCert(fed.setup.ca, 'stray', { federation: 'demo', region: 'us-east', node: 'us-east-node-1' }, { dir: join(fed.dir, 'tls') }));
    await destSecret.write({ ca: Buffer.concat([oldCa, newCaPem]), cert: destV2.cert, key: stray.key });
    await waitFor('us-east to refuse the bad set', async () => (await fed.dest.metric('dwcp_certificate_reloads_total', 'result="rejected"')) >= 1, 30_000, 200);
    assert.ok(fed.dest.logs.some((l) => l.includes('new certificates refused; keeping the old ones')), 'the refusal is logged');
    assert.equal(await presented(fed.setup.ports.dest, client), fingerprint(destV2.cert), 'the last good certificate is still presented');

    // 3. eu-west moves to a certificate of the new CA; then us-east restarts trusting only the new CA,
    //    so eu-west's redial gets in only if it presents its new certificate.
    const sourceV2 = await pem(await issueDevCert(newCa, 'eu-west-v2', { federation: 'demo', region: 'eu-west', node: 'eu-west-node-1' }));
    await sourceSecret.write({ ca: oldCa, ...sourceV2 });
    await waitFor('eu-west to reload', async () => (await fed.source.metric('dwcp_certificate_reloads_total', 'result="loaded"')) >= 1, 30_000, 200);
    await fed.dest.kill9();
    await destSecret.write({ ca: newCaPem, ...destV2 });
    await fed.dest.start();
    await replicates(fed);
  } finally {
    await fed.cleanup();
  }
});
