// Spooled WAL over the agent's HTTP port, for a restore_command on another
// host or pod: GET /wal/<stream>/<file> with HTTP Basic authentication
// against the stream's walsender users. So restore_command is one line:
//   curl -sfo %p -u standby:secret http://agent:9464/wal/pg-main/%f
// Answers: 200 with the file (streamed, with backpressure), 404 not in the
// spool, 409 present but not committed in consensus yet (it may still be
// rolled back), 400 a name that is not a WAL segment, .partial segment or
// history file, 401 no or wrong credentials, 403 the stream has no users
// (never open by default). A .partial segment is served up to the
// committed end only.

import { createHash, timingSafeEqual } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseSegmentFileName } from './lsn.ts';
import { isCommitted } from './wal-restore.ts';
import { committedViewOf, PARTIAL_SUFFIX } from './wal-spool.ts';

/** URL prefix of the WAL file endpoint. */
export const WAL_FILE_PATH_PREFIX = '/wal/';

/** Names served: a segment, a .partial segment, a history file. */
const SERVABLE_NAME = /^([0-9A-F]{24}(\.partial)?|[0-9A-F]{8}\.history)$/;

/** A pg-wal destination whose spool is served. */
export interface ServedSpool {
  /** Spool directory. */
  dir: string;
  /** user -> password allowed to fetch (the walsender's users). */
  users: Record<string, string>;
}

/** Looks up the spool of a stream with a destination here (undefined if none). */
export type SpoolLookup = (streamId: string) => ServedSpool | undefined;

/** Answer GET /wal/<stream>/<file>; the caller routed the prefix here. */
export async function serveWalFile(req: IncomingMessage, res: ServerResponse, lookup: SpoolLookup): Promise<void> {
  const reply = (code: number, body: string, headers: Record<string, string> = {}): void => {
    res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', ...headers });
    res.end(body);
  };
  // Exactly /wal/<stream>/<file>, names checked after decoding (no "..", no "/").
  const parts = (req.url ?? '').split('?')[0].slice(WAL_FILE_PATH_PREFIX.length).split('/');
  let streamId: string;
  let name: string;
  try {
    [streamId, name] = parts.map(decodeURIComponent);
  } catch {
    return reply(400, 'wal: malformed path\n');
  }
  if (parts.length !== 2 || !name || !SERVABLE_NAME.test(name)) {
    return reply(400, 'wal: path must be /wal/<stream>/<WAL segment, .partial segment or history file name>\n');
  }
  const spool = lookup(streamId);
  if (!spool) return reply(404, `wal: no pg-wal stream "${streamId}" lands here\n`);
  if (Object.keys(spool.users).length === 0) {
    return reply(403, `wal: stream "${streamId}" has no walsender users; configure walsender.users to fetch WAL over HTTP\n`);
  }
  if (!authorized(req.headers.authorization, spool.users)) {
    return reply(401, 'wal: authentication required (HTTP Basic, a walsender user)\n', { 'www-authenticate': 'Basic realm="dwcp-wal"' });
  }

  // Open first (the file may be renamed from .partial meanwhile), then check it is committed.
  let handle: FileHandle;
  try {
    handle = await open(join(spool.dir, name), 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return reply(404, `wal: ${name} not in spool\n`);
    return reply(500, `wal: open ${name}: ${(err as Error).message}\n`);
  }
  try {
    const length = await committedLength(spool.dir, name, (await handle.stat()).size);
    if (length === undefined) return reply(409, `wal: ${name} is not committed yet\n`);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(length) });
    if (length === 0) return void res.end();
    await pipeline(handle.createReadStream({ start: 0, end: length - 1, autoClose: false }), res);
  } catch (err) {
    if (!res.headersSent) reply(500, `wal: read ${name}: ${(err as Error).message}\n`);
    else res.destroy();
  } finally {
    await handle.close();
  }
}

/** Bytes of the file that are committed: all, a .partial's committed prefix, or undefined when not committed. */
async function committedLength(dir: string, name: string, size: number): Promise<number | undefined> {
  const committed = await committedViewOf(dir);
  if (!committed) return undefined;
  if (!name.endsWith(PARTIAL_SUFFIX)) {
    return isCommitted(name, committed.timeline, committed.flushLsn, committed.walSegmentSize) ? size : undefined;
  }
  const seg = parseSegmentFileName(name.slice(0, -PARTIAL_SUFFIX.length), committed.walSegmentSize);
  if (!seg || seg.timeline !== committed.timeline) return undefined;
  const segStart = seg.segno * committed.walSegmentSize;
  if (committed.flushLsn <= segStart) return undefined;
  return Math.min(size, committed.flushLsn - segStart);
}

/** HTTP Basic credentials that match a configured user (compared in constant time). */
function authorized(header: string | undefined, users: Record<string, string>): boolean {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
  if (!m) return false;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return false;
  const user = text.slice(0, colon);
  const expected = Object.hasOwn(users, user) ? users[user] : undefined;
  // Hash both sides: equal lengths for timingSafeEqual, and an unknown user costs the same.
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  const same = timingSafeEqual(digest(text.slice(colon + 1)), digest(expected ?? `\0${text}`));
  return same && expected !== undefined;
}
