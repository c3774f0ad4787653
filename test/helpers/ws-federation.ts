// A two-region federation whose destination also listens for WebSocket
// carriers (listenWs); with a proxy port, the source reaches the
// destination only through wss:// at that proxy.

import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { freePort } from '../../src/cli/free-port.ts';
import type { TlsMaterial } from '../../src/transport/transport.ts';
import { startFederation, type Federation } from './federation.ts';

/** The agents' WebSocket path (listenWs.path). */
export const WS_PATH = '/dwcp';

/** Make the federation (not started) with the destination's WebSocket listener on a free port. */
export async function federationOverWs(totalBytes: number, proxyPort?: number): Promise<{ fed: Federation; wsPort: number }> {
  const fed = await startFederation({ totalBytes, start: false, carriers: 4 });
  const wsPort = await freePort();
  const { ports } = fed.setup;
  const destCfg = await readFile(fed.setup.destConfig, 'utf8');
  await writeFile(fed.setup.destConfig, destCfg.replace(/^listen: .*$/m, (line) => `${line}\nlistenWs: { host: 127.0.0.1, port: ${wsPort}, path: ${WS_PATH} }`));
  if (proxyPort !== undefined) {
    const sourceCfg = await readFile(fed.setup.sourceConfig, 'utf8');
    await writeFile(fed.setup.sourceConfig, sourceCfg.replace(`"127.0.0.1:${ports.dest}"`, `"wss://127.0.0.1:${proxyPort}${WS_PATH}"`));
  }
  return { fed, wsPort };
}

/** PEM material of certificate files. */
export function material(files: { caFile: string; certFile: string; keyFile: string }): TlsMaterial {
  return { ca: readFileSync(files.caFile), cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
}
