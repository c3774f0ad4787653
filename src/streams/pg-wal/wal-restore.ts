// restore_command helper (`dwcp wal-restore %f %p`): install one complete
// segment or history file, atomically, so a standby or a point-in-time
// restore can fetch WAL the agent received: from the agent's HTTP endpoint
// (walFetch, see wal-file-server.ts; works from another pod and needs no
// access to the spool's files) or straight from a spool directory
// (walRestore, for an agent that is down). Only WAL the region consensus
// committed is served (see wal-spool.ts): a segment that ends past the
// committed position may still be rolled back.

import { constants as fsConstants } from 'node:fs';
import { createWriteStream } from 'node:fs';
import { access, copyFile, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseSegmentFileName } from './lsn.ts';
import { committedViewOf } from './wal-spool.ts';

/** The spool does not hold the requested file (restore_command must fail). */
export class WalFileMissingError extends Error {
  override name = 'WalFileMissingError';
}

/** Names restore_command may ask for: a segment or a history file. */
const RESTORABLE_NAME = /^([0-9A-F]{24}|[0-9A-F]{8}\.history)$/;

/**
 * Copy spoolDir/fileName to targetPath (temp file, fsync, rename). Only
 * complete segments are served: a ".partial" one is still being written.
 * Throws WalFileMissingError when the spool does not have it.
 */
export async function walRestore(spoolDir: string, fileName: string, targetPath: string): Promise<void> {
  if (!RESTORABLE_NAME.test(fileName)) {
    throw new WalFileMissingError(`wal-restore: "${fileName}" is not a WAL segment or history file name`);
  }
  // Present, then committed: what is durable but not committed in consensus may still be rolled back.
  const present = await access(join(spoolDir, fileName)).then(() => true, () => false);
  if (!present) throw new WalFileMissingError(`wal-restore: ${fileName} not in spool ${spoolDir}`);
  const committed = await committedViewOf(spoolDir);
  if (!committed || !isCommitted(fileName, committed.timeline, committed.flushLsn, committed.walSegmentSize)) {
    throw new WalFileMissingError(`wal-restore: ${fileName} is not committed yet in spool ${spoolDir}`);
  }
  const tmp = tempPathFor(targetPath);
  try {
    await copyFile(join(spoolDir, fileName), tmp);
  } catch (err) {
    await rm(tmp, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new WalFileMissingError(`wal-restore: ${fileName} not in spool ${spoolDir}`);
    }
    throw new Error(`wal-restore: copy ${fileName}: ${(err as Error).message}`);
  }
  await install(tmp, targetPath);
}

/** Credentials of the HTTP endpoint (a walsender user). */
export interface WalFetchAuth {
  user: string;
  password: string;
}

/**
 * GET baseUrl/fileName from an agent's WAL endpoint into targetPath (temp
 * file, fsync, rename). Throws WalFileMissingError when the agent does not
 * have it or has not committed it yet (404, 409).
 */
export async function walFetch(baseUrl: string, fileName: string, targetPath: string, auth: WalFetchAuth): Promise<void> {
  if (!RESTORABLE_NAME.test(fileName)) {
    throw new WalFileMissingError(`wal-restore: "${fileName}" is not a WAL segment or history file name`);
  }
  const url = `${baseUrl.replace(/\/+$/, '')}/${fileName}`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}` } });
  } catch (err) {
    throw new Error(`wal-restore: GET ${url}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
  }
  if (res.status === 404 || res.status === 409) {
    await res.body?.cancel();
    throw new WalFileMissingError(`wal-restore: ${fileName}: ${res.status === 404 ? 'not in spool' : 'not committed yet'} (${url})`);
  }
  if (res.status !== 200 || !res.body) {
    const text = (await res.text().catch(() => '')).trim();
    throw new Error(`wal-restore: GET ${url}: HTTP ${res.status}${text ? `: ${text}` : ''}`);
  }
  const tmp = tempPathFor(targetPath);
  try {
    await pipeline(Readable.fromWeb(res.body), createWriteStream(tmp, { mode: 0o600 }));
  } catch (err) {
    await rm(tmp, { force: true });
    throw new Error(`wal-restore: GET ${url}: ${(err as Error).message}`);
  }
  await install(tmp, targetPath);
}

function tempPathFor(targetPath: string): string {
  return join(dirname(targetPath), `.${basename(targetPath)}.dwcp-tmp`);
}

/** fsync tmp, rename it to targetPath, fsync the directory. */
async function install(tmp: string, targetPath: string): Promise<void> {
  try {
    const h = await open(tmp, fsConstants.O_RDWR);
    try {
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, targetPath);
    const d = await open(dirname(targetPath), fsConstants.O_RDONLY);
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw new Error(`wal-restore: install ${targetPath}: ${(err as Error).message}`);
  }
}

/** A history file of the committed timeline or an earlier one; a segment that ends at or before the committed end. */
export function isCommitted(fileName: string, timeline: number, flushLsn: number, segmentSize: number): boolean {
  const history = /^([0-9A-F]{8})\.history$/.exec(fileName);
  if (history) return parseInt(history[1], 16) <= timeline;
  const seg = parseSegmentFileName(fileName, segmentSize);
  if (!seg) return false;
  // Segments of earlier timelines end at or before the switch, which is before the committed end.
  return seg.timeline < timeline || (seg.timeline === timeline && (seg.segno + 1) * segmentSize <= flushLsn);
}
