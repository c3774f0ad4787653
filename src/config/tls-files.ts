// The PEM files a config names, read at start. A file that cannot be read
// is a config problem naming the field (tls.cert, acp.tls.key ...).

import { readFile } from 'node:fs/promises';
import { ConfigError, type ConfigIssue } from './config-error.ts';
import type { Config, TlsFiles } from './config.ts';

/** PEM contents of one TLS block, ready for tls.createSecureContext. */
export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/**
 * Reads the three files of a TLS block; `field` is its path in the config
 * (e.g. 'tls') so a failure names tls.ca, tls.cert or tls.key.
 */
export async function readTlsFiles(files: TlsFiles, field: string, source: string): Promise<TlsMaterial> {
  const issues: ConfigIssue[] = [];
  const [ca, cert, key] = await Promise.all([
    readOne(files.caFile, `${field}.ca`, issues),
    readOne(files.certFile, `${field}.cert`, issues),
    readOne(files.keyFile, `${field}.key`, issues),
  ]);
  if (issues.length > 0) throw new ConfigError(source, issues);
  return { ca: ca!, cert: cert!, key: key! };
}

/** Reads every TLS file of a config (agent and etcd) once, failing with all unreadable ones. */
export async function checkTlsFiles(config: Config): Promise<void> {
  const blocks: [TlsFiles, string][] = [[config.tls, 'tls']];
  if (config.acp.backend === 'etcd' && config.acp.tls) blocks.push([config.acp.tls, 'acp.tls']);
  const results = await Promise.allSettled(blocks.map(([files, field]) => readTlsFiles(files, field, config.source)));
  const issues = results.flatMap((r) => (r.status === 'rejected' ? (r.reason as ConfigError).issues : []));
  if (issues.length > 0) throw new ConfigError(config.source, issues);
}

// One file, or undefined with an issue naming the field.
async function readOne(file: string, field: string, issues: ConfigIssue[]): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    issues.push({ path: field, message: `cannot read ${file}: ${code}` });
    return undefined;
  }
}
