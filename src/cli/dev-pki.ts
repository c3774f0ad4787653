// Certificates made with the openssl command line (EC P-256): a CA and one
// certificate per agent carrying the agent's identity as a URI SAN
// dwcp://<federation>/<region>/<node> (see src/transport/peer-identity.ts).
// The demo, the benchmark and tests use a throwaway CA valid for a week;
// `dwcp certs` uses the same functions with longer lifetimes.

import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { agentUri, type AgentName } from '../transport/peer-identity.ts';

const run = promisify(execFile);

/** Lifetime of dev certificates, days. */
export const DEV_CERT_DAYS = 7;

/** Paths of one agent's PEM files. */
export interface DevCert {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** A certificate authority on disk. */
export interface DevCa {
  /** Directory the CA's files live in (and new certificates go by default). */
  dir: string;
  caFile: string;
  caKeyFile: string;
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

/** Create a CA named caName in dir (CA.crt, CA.key). */
export async function createDevCa(dir: string, caName = 'dwcp-dev-ca', days = DEV_CERT_DAYS): Promise<DevCa> {
  await mkdir(dir, { recursive: true });
  const caKeyFile = join(dir, `${caName}.key`);
  const caFile = join(dir, `${caName}.crt`);
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKeyFile, '-out', caFile, '-days', String(days), '-subj', `/CN=${caName}`]);
  return { dir, caFile, caKeyFile };
}

/** Options of one issued certificate. */
export interface IssueOptions {
  /** Directory for name.crt and name.key (default the CA's). */
  dir?: string;
  /** Lifetime, days (default DEV_CERT_DAYS). */
  days?: number;
}

/**
 * Issue name.crt / name.key signed by the CA. With an identity the
 * certificate carries its dwcp:// URI SAN; null issues one without (tests
 * use that to play a member that names no agent).
 */
export async function issueDevCert(ca: DevCa, name: string, identity: AgentName | null, options: IssueOptions = {}): Promise<DevCert> {
  const dir = options.dir ?? ca.dir;
  await mkdir(dir, { recursive: true });
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const certFile = join(dir, `${name}.crt`);
  // Client and server auth: the same certificate dials and accepts.
  const extensions = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth,clientAuth'];
  if (identity) extensions.push(`subjectAltName=URI:${agentUri(identity)}`);
  await writeFile(ext, extensions.join('\n') + '\n');
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`]);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.caFile, '-CAkey', ca.caKeyFile, '-CAcreateserial', '-out', certFile, '-days', String(options.days ?? DEV_CERT_DAYS), '-extfile', ext]);
  await Promise.all([rm(csr, { force: true }), rm(ext, { force: true })]);
  return { caFile: ca.caFile, certFile, keyFile };
}

/** Create a CA (named caName) in dir and a certificate for each named agent (null: no identity SAN). */
export async function createDevPki(dir: string, agents: Record<string, AgentName | null>, caName = 'dwcp-dev-ca'): Promise<Record<string, DevCert>> {
  const ca = await createDevCa(dir, caName);
  const certs: Record<string, DevCert> = {};
  for (const [name, identity] of Object.entries(agents)) certs[name] = await issueDevCert(ca, name, identity);
  return certs;
}
