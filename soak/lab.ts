// The soak's world: two regions on their own real 3-member etcd clusters,
// two agents in the source region (so a killed sender has a successor) and
// one in the destination region, a PostgreSQL 15 primary streaming through
// the agents to a far standby, an objects stream from a seeded tree, the
// source region dialing the destination through a TCP relay (carrier cuts),
// and the destination's sink and spool on a small tmpfs (disk full). Built
// on the ACP test federation; everything it starts ends in cleanup().

import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSampleTree } from '../src/cli/sample-tree.ts';
import { moveTreeInto, tempDir } from '../test/helpers/acp-federation.ts';
import { PG_STREAM, startAcpPgFederation, type AcpPgFederation } from '../test/helpers/acp-pg-federation.ts';
import type { StreamKind } from './chaos-plan.ts';
import { mountSinkDisk, type SinkDisk } from './sink-disk.ts';

/** Id of the objects stream. */
export const OBJECTS_STREAM = 'objs';
/** Source-region agents: one sends, one stands by to take over. */
const SOURCE_AGENTS = 2;
/** Destination-region agents: one, so every restart replays its own audit log to the checkpoint. */
const DEST_AGENTS = 1;
/** Lease TTL of the agents. */
export const LEASE_TTL = '2s';
/** The initial source tree, bytes, and its largest file. */
const INITIAL_TREE_BYTES = 8 * 1024 * 1024;
const INITIAL_LARGEST_BYTES = 2 * 1024 * 1024;

/** Options of startSoakLab. */
export interface SoakLabOptions {
  seed: number;
  /** Size of the sink tmpfs, bytes; 0 keeps the sink on the ordinary temp disk. */
  diskBytes: number;
  /** etcd members compact their history this often, e.g. '5s'; undefined: never. */
  etcdCompaction?: string;
}

/** A running lab. */
export interface SoakLab {
  fed: AcpPgFederation;
  sourcePath: string;
  destPath: string;
  /** The sink disk, when mounted. */
  disk: SinkDisk | null;
  /** Stream id of a stream kind. */
  streamId(stream: StreamKind): string;
  /** Highest sequence number in the destination's audit log of a stream (0 before any). */
  position(stream: StreamKind): Promise<number>;
  /** Stop everything and remove every file and the mount (idempotent). */
  cleanup(): Promise<void>;
}

/** Start the lab and put the initial tree in place. */
export async function startSoakLab(options: SoakLabOptions): Promise<SoakLab> {
  const dir = await tempDir('dwcp-soak-');
  let disk: SinkDisk | null = null;
  let fed: AcpPgFederation | null = null;
  let cleaned: Promise<void> | null = null;
  const cleanup = (): Promise<void> => {
    cleaned ??= (async () => {
      // Agents first (they hold the disk), then the mount.
      await fed?.cleanup().catch(() => undefined);
      await disk?.unmount();
      await rm(dir, { recursive: true, force: true });
    })();
    return cleaned;
  };
  try {
    if (options.diskBytes > 0) disk = await mountSinkDisk(options.diskBytes);
    const sinkRoot = disk?.path ?? join(dir, 'sink');
    const sourcePath = join(dir, 'src-tree');
    const destPath = join(sinkRoot, 'objects');
    await mkdir(sourcePath, { recursive: true });
    await mkdir(destPath, { recursive: true });
    await generateSampleTree(join(dir, 'staging'), { totalBytes: INITIAL_TREE_BYTES, largestBytes: INITIAL_LARGEST_BYTES, seed: options.seed });
    fed = await startAcpPgFederation({
      dir,
      agentsPerRegion: SOURCE_AGENTS,
      destAgents: DEST_AGENTS,
      leaseTtl: LEASE_TTL,
      objectStreams: [{ id: OBJECTS_STREAM, sourcePath, destPath }],
      spoolDir: join(sinkRoot, 'spool', PG_STREAM),
      relay: true,
      etcdCompaction: options.etcdCompaction,
    });
    await moveTreeInto(join(dir, 'staging'), sourcePath);
    const streamId = (stream: StreamKind): string => (stream === 'objects' ? OBJECTS_STREAM : PG_STREAM);
    const federation = fed;
    return {
      fed,
      sourcePath,
      destPath,
      disk,
      streamId,
      position: async (stream) => {
        const seqs = await federation.auditSeqs(streamId(stream));
        return seqs.length === 0 ? 0 : seqs[seqs.length - 1];
      },
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
