// A two-region federation on loopback for one pg-wal stream: certificates,
// config files and data directories. The agent of "eu-west" streams WAL from
// a primary through a physical slot; the agent of "us-east" spools it and
// serves it to a standby on its walsender endpoint. The WAL benchmark and the
// end-to-end tests start from here, through the same config path as a real
// deployment.

import { join } from 'node:path';
import type { DevCert } from './dev-pki.ts';
import { freePort } from './free-port.ts';
import { DEST_REGION, SOURCE_REGION, writeFederationFiles } from './two-region.ts';

/** Options for the generated configs. */
export interface PgTwoRegionOptions {
  /** Work directory (certs, configs, data dirs, spool). */
  dir: string;
  /** The primary the source agent streams from (a role with REPLICATION). */
  primary: { host: string; port: number; user: string; password?: string };
  /** Stream id (default "pg-main"). */
  streamId?: string;
  /** Physical slot on the primary (default dwcp_<stream id>). */
  slot?: string;
  /** Synchronous mode (default false). */
  synchronous?: boolean;
  /** application_name of the replication connection (default dwcp_<stream id>). */
  applicationName?: string;
  /** Users of the walsender endpoint (user: password); default none. */
  walsenderUsers?: Record<string, string>;
  /** Networks let in without a password (default none: SCRAM for everyone). */
  walsenderTrust?: string[];
  carriers?: number;
  /** zstd level (default 3). */
  level?: number;
  /** Let the online level choice move the level (default true). */
  adaptiveLevel?: boolean;
  /** Checkpoint interval (default '50ms'). */
  checkpointInterval?: string;
  /** Port the source dials for the destination region (a test relay); default the destination's own port. */
  destPortSeenBySource?: number;
  /** Carrier addresses per side (see FederationFiles.hosts). */
  hosts?: { source: string; dest: string };
  /** Extra YAML under `amst:` (e.g. congestionControl). */
  amstExtra?: string;
}

/** Paths and ports of the generated federation. */
export interface PgTwoRegion {
  sourceConfig: string;
  destConfig: string;
  streamId: string;
  slot: string;
  applicationName: string;
  /** us-east's spool directory. */
  spoolDir: string;
  ports: { source: number; dest: number; sourceHttp: number; destHttp: number; walsender: number };
  certs: Record<string, DevCert>;
}

/** Quote a YAML scalar (JSON strings are valid YAML). */
function q(value: string): string {
  return JSON.stringify(value);
}

/** Write certs and the two config files. */
export async function writePgTwoRegion(options: PgTwoRegionOptions): Promise<PgTwoRegion> {
  const streamId = options.streamId ?? 'pg-main';
  const slot = options.slot ?? `dwcp_${streamId.replaceAll('-', '_')}`;
  const applicationName = options.applicationName ?? `dwcp_${streamId.replaceAll('-', '_')}`;
  const walsenderPort = await freePort();
  const spoolDir = join(options.dir, DEST_REGION, 'spool', streamId);
  const { primary } = options;
  const connection = [`host: ${q(primary.host)}`, `port: ${primary.port}`, `user: ${q(primary.user)}`];
  if (primary.password !== undefined) connection.push(`password: ${q(primary.password)}`);
  const users = Object.entries(options.walsenderUsers ?? {}).map(([u, p]) => `${q(u)}: ${q(p)}`).join(', ');
  const trust = (options.walsenderTrust ?? []).map(q).join(', ');
  const files = await writeFederationFiles({
    dir: options.dir,
    carriers: options.carriers ?? 2,
    level: options.level ?? 3,
    adaptiveLevel: options.adaptiveLevel,
    chunk: '256KiB',
    checkpointInterval: options.checkpointInterval ?? '50ms',
    destPortSeenBySource: options.destPortSeenBySource,
    hosts: options.hosts,
    amstExtra: options.amstExtra,
    streams: `  - id: ${streamId}
    kind: pg-wal
    source:
      region: ${SOURCE_REGION}
      connection: { ${connection.join(', ')} }
      slot: ${slot}
      synchronous: ${options.synchronous ?? false}
      applicationName: ${q(applicationName)}
    destinations:
      - region: ${DEST_REGION}
        path: ${spoolDir}
        walsender: { host: 127.0.0.1, port: ${walsenderPort}, users: { ${users} }, trust: [${trust}] }
`,
  });
  return { ...files, streamId, slot, applicationName, spoolDir, ports: { ...files.ports, walsender: walsenderPort } };
}
