// The destination region's disk in a soak: a small tmpfs mounted by the
// harness (it runs as root) that holds the objects sink and the WAL spool,
// so "disk full" is a real ENOSPC for the agent. fill() writes a filler file
// until the kernel refuses; free() deletes it; unmount() removes the mount
// and its mount point (lazily when something still holds it open).

import { spawnSync } from 'node:child_process';
import { mkdtemp, open, rm, rmdir, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Name of the file that fills the disk. */
const FILLER = '.soak-filler';
/** Bytes written per filler write. */
const FILL_BLOCK_BYTES = 1024 * 1024;

/** A mounted sink disk. */
export interface SinkDisk {
  /** Mount point. */
  readonly path: string;
  /** Fill the disk to the last byte; returns the bytes the filler took. */
  fill(): Promise<number>;
  /** Delete the filler. */
  free(): Promise<void>;
  /** Size and bytes in use, from statfs. */
  usage(): Promise<{ sizeBytes: number; usedBytes: number }>;
  /** Unmount and remove the mount point (idempotent). */
  unmount(): Promise<void>;
}

/** Run a system tool; throws with its output on failure. */
function run(tool: string, args: string[]): void {
  const r = spawnSync(tool, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')}: exit ${r.status}: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
}

/** Mount a tmpfs of sizeBytes on a fresh directory under the temp dir. */
export async function mountSinkDisk(sizeBytes: number): Promise<SinkDisk> {
  if (process.getuid?.() !== 0) throw new Error('sink disk: mounting a tmpfs needs root (run the soak as root, or leave out the disk fault)');
  const path = await mkdtemp(join(tmpdir(), 'dwcp-soak-disk-'));
  try {
    run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'dwcp-soak', path]);
  } catch (err) {
    await rmdir(path).catch(() => undefined);
    throw err;
  }
  let mounted = true;
  const filler = join(path, FILLER);
  return {
    path,
    fill: async () => {
      // At most size/block + 1 writes: the last one meets ENOSPC.
      const fh = await open(filler, 'w');
      let bytes = 0;
      const block = Buffer.alloc(FILL_BLOCK_BYTES, 0x5a);
      try {
        for (let i = 0; i <= Math.ceil(sizeBytes / FILL_BLOCK_BYTES); i++) {
          try {
            bytes += (await fh.write(block)).bytesWritten;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw err;
          }
        }
      } finally {
        await fh.close();
      }
      return bytes;
    },
    free: async () => {
      await rm(filler, { force: true });
    },
    usage: async () => {
      const st = await statfs(path);
      return { sizeBytes: st.blocks * st.bsize, usedBytes: (st.blocks - st.bfree) * st.bsize };
    },
    unmount: async () => {
      if (!mounted) return;
      try {
        run('umount', [path]);
      } catch {
        // Something still holds a file open there (an agent being reaped): detach now, freed when closed.
        run('umount', ['-l', path]);
      }
      mounted = false;
      await rmdir(path);
    },
  };
}
