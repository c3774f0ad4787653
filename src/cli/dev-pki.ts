// A throwaway certificate authority for the demo, the benchmark and tests:
// one CA and one certificate per agent, made with the openssl command line
// (EC P-256, valid for a week). Production uses the federation's own CA.

import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of one agent's PEM files. */
export interface DevCert {
  caFile: string;
  certFile: string;
  keyFile: string;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('openssl not found: install the Debian package openssl (npm run setup does this)');
    throw new Error(`openssl ${args[0]}: ${e.stderr?.trim() ?? e.message}`);
  }
}

/** Create a CA (named caName) in dir and a certificate for each name. */
export async function createDevPki(dir: string, names: string[], caName = 'dwcp-dev-ca'): Promise<Record<string, DevCert>> {
  await mkdir(dir, { recursive: true });
  const caKey = join(dir, `${caName}.key`);
  const caFile = join(dir, `${caName}.crt`);
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '7', '-subj', `/CN=${caName}`]);
  const certs: Record<string, DevCert> = {};
  for (const name of names) {
    const keyFile = join(dir, `${name}.key`);
    const csr = join(dir, `${name}.csr`);
    const certFile = join(dir, `${name}.crt`);
    await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`]);
    await openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '7']);
    certs[name] = { caFile, certFile, keyFile };
  }
  return certs;
}
