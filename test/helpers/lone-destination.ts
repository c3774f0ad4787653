// A destination agent alone (us-east of the two-region setup, no source
// agent), for tests that speak the wire format to it themselves, holding
// the eu-west member's certificate.

import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTwoRegion, type TwoRegion } from '../../src/cli/two-region.ts';
import type { TlsMaterial } from '../../src/transport/tls-transport.ts';
import { AgentProcess } from './agent-process.ts';

/** The running destination and what a test needs to talk to it. */
export interface LoneDestination {
  dir: string;
  setup: TwoRegion;
  dest: AgentProcess;
  /** Certificates and key of the source region's agent (eu-west). */
  member: TlsMaterial;
  /** Kill the agent and remove its directory. */
  close(): Promise<void>;
}

/** Start the destination agent in a new temp dir named by prefix; amstExtra goes into its amst section. */
export async function startLoneDestination(prefix: string, amstExtra?: string): Promise<LoneDestination> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await mkdir(join(dir, 'src'));
  await mkdir(join(dir, 'dst'));
  const setup = await writeTwoRegion({ dir, sourcePath: join(dir, 'src'), destPath: join(dir, 'dst'), amstExtra });
  const dest = new AgentProcess(setup.destConfig, setup.ports.destHttp);
  await dest.start();
  const c = setup.certs['eu-west'];
  const member = { ca: readFileSync(c.caFile), cert: readFileSync(c.certFile), key: readFileSync(c.keyFile) };
  return {
    dir,
    setup,
    dest,
    member,
    async close() {
      await dest.kill9();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
