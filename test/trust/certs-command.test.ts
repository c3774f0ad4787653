// `dwcp certs` issues a CA and agent certificates an agent accepts: the
// certificate names dwcp://<federation>/<region>/<node>, chains to the CA,
// serves as client and server, and its key is private to its owner.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pemIdentity } from '../../src/transport/peer-identity.ts';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

test('dwcp certs issues a CA and an agent certificate naming dwcp://<federation>/<region>/<node>', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-certs-'));
  try {
    await run(process.execPath, [CLI, 'certs', 'ca', '--out', dir, '--name', 'fed-ca']);
    const { stdout } = await run(process.execPath, [CLI, 'certs', 'agent', '--ca', join(dir, 'fed-ca.crt'), '--ca-key', join(dir, 'fed-ca.key'), '--federation', 'prod', '--region', 'eu-west', '--node', 'node-7', '--out', join(dir, 'agents')]);
    assert.match(stdout, /agent dwcp:\/\/prod\/eu-west\/node-7/);
    const certPem = await readFile(join(dir, 'agents', 'node-7.crt'));
    assert.deepEqual(pemIdentity(certPem), { federation: 'prod', region: 'eu-west', node: 'node-7' });
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(await readFile(join(dir, 'fed-ca.crt')));
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'signed by the CA');
    assert.equal(cert.ca, false, 'not a CA itself');
    assert.equal((await stat(join(dir, 'agents', 'node-7.key'))).mode & 0o077, 0, 'the key is readable by its owner only');
    // A region name the config would refuse is refused here too.
    await assert.rejects(run(process.execPath, [CLI, 'certs', 'agent', '--ca', join(dir, 'fed-ca.crt'), '--ca-key', join(dir, 'fed-ca.key'), '--federation', 'prod', '--region', 'EU West', '--node', 'n', '--out', dir]), /--region must be 1..63 lowercase letters/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
