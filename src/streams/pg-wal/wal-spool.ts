// The WAL spool: a directory in pg_wal layout. Complete segments carry their
// plain name (TTTTTTTTXXXXXXXXYYYYYYYY); the one being written carries
// ".partial"; TTTTTTTT.history files sit beside them. A small state file
// (dwcp-spool.json, replaced atomically on every flush) says which cluster
// the WAL belongs to and where durable WAL ends. A second one
// (dwcp-committed.json) says where WAL committed in the region consensus
// ends (the checkpoint CAS succeeded): durable WAL past it may still be
// rolled back by recover(), so readers serve nothing past the committed end.
// The writer is the sink's; readers (walsender endpoint, restore helper)
// only read.

import { constants as fsConstants } from 'node:fs';
import { open, readdir, readFile, rename, rm, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import { EventEmitter } from 'node:events';
import { join, resolve } from 'node:path';
import {
  DEFAULT_WAL_SEGMENT_SIZE,
  formatLsn,
  historyFileName,
  parseHistory,
  parseSegmentFileName,
  segmentFileName,
  segmentOf,
  segmentStart,
} from './lsn.ts';

/** Name of the spool's state file. */
export const SPOOL_STATE_FILE = 'dwcp-spool.json';
/** Name of the file saying where WAL committed in consensus ends. */
export const SPOOL_COMMITTED_FILE = 'dwcp-committed.json';
/** Suffix of the segment being written. */
export const PARTIAL_SUFFIX = '.partial';
/** Event a spool's notifier emits when its committed marker or durable end moved. */
const CHANGED = 'changed';

/**
 * One board per spool directory in this process. The writer posts on it
 * what it has just put on disk (the state file's content after each flush,
 * the committed marker after each commit) and emits CHANGED; readers in the
 * same process (walsender endpoint, file server, metrics) take the view
 * from the board instead of reading and parsing both files, and wait on
 * CHANGED instead of polling them (issue 9 item 7: a 50 ms poll added up to
 * 50 ms of lag per hop; reading the files on every wake-up and metrics
 * sample cost ~10 % of the destination agent's CPU in a WAL catch-up
 * profile). A reader in another process, or before this process's writer
 * has posted both, reads the files. The board is never ahead of the disk.
 */
interface SpoolBoard {
  changed: EventEmitter;
  /** The state file's content as this process last wrote it. */
  state?: SpoolState;
  /** The committed marker as this process last wrote it. */
  committed?: SpoolCommitted;
}

const boards = new Map<string, SpoolBoard>();

function boardOf(dir: string): SpoolBoard {
  const key = resolve(dir);
  let b = boards.get(key);
  if (!b) {
    b = { changed: new EventEmitter() };
    // Every streaming standby of the spool waits on it.
    b.changed.setMaxListeners(0);
    boards.set(key, b);
  }
  return b;
}

/**
 * The spool's durable state: as this process's writer last posted it, else
 * read from the state file.
 */
export async function spoolStateOf(dir: string): Promise<SpoolState | undefined> {
  const posted = boards.get(resolve(dir))?.state;
  return posted ? { ...posted } : await readSpoolState(dir);
}

/**
 * What readers may serve (committedView of the state and the committed
 * marker): from this process's writer's posts when it made both, else read
 * from the files.
 */
export async function committedViewOf(dir: string): Promise<SpoolState | undefined> {
  const b = boards.get(resolve(dir));
  if (b?.state && b.committed) return committedView({ ...b.state }, b.committed);
  return committedView(await readSpoolState(dir), await readSpoolCommitted(dir));
}

/** What the state file records. */
export interface SpoolState {
  systemId: string;
  walSegmentSize: number;
  serverVersion: number;
  /** Latest timeline in the spool. */
  timeline: number;
  /** First LSN held (WAL before it was never received). */
  startLsn: number;
  /** End of durable WAL on the latest timeline. */
  flushLsn: number;
}

/** Where committed WAL ends: the position of the last checkpoint committed in consensus. */
export interface SpoolCommitted {
  systemId: string;
  timeline: number;
  flushLsn: number;
}

/** fsync a directory so renames and creations in it are durable. */
async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, fsConstants.O_RDONLY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Write a file atomically: temp file, fsync, rename, fsync of the directory. */
export async function writeFileAtomic(dir: string, name: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dir, `.${name}.tmp`);
  const h = await open(tmp, 'w');
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, join(dir, name));
  await fsyncDir(dir);
}

/** Read the state file; undefined when the spool holds nothing yet. */
export async function readSpoolState(dir: string): Promise<SpoolState | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, SPOOL_STATE_FILE), 'utf8')) as SpoolState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`read spool state: ${(err as Error).message}`);
  }
}

/**
 * Read the committed marker; undefined when absent or unreadable (a crash
 * may leave it empty: it is not fsynced, recover() writes it again).
 */
export async function readSpoolCommitted(dir: string): Promise<SpoolCommitted | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, SPOOL_COMMITTED_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`read spool committed position: ${(err as Error).message}`);
  }
  try {
    const c = JSON.parse(text) as SpoolCommitted;
    return typeof c.systemId === 'string' && Number.isInteger(c.timeline) && Number.isInteger(c.flushLsn) ? c : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What readers may serve: the durable state cut to the committed position
 * (undefined when nothing of this cluster is committed yet).
 */
export function committedView(state: SpoolState | undefined, committed: SpoolCommitted | undefined): SpoolState | undefined {
  if (!state || state.flushLsn < 0 || !committed || committed.systemId !== state.systemId) return undefined;
  if (committed.timeline > state.timeline) return undefined;
  if (committed.timeline === state.timeline && committed.flushLsn >= state.flushLsn) return state;
  if (committed.flushLsn < state.startLsn) return undefined;
  return { ...state, timeline: committed.timeline, flushLsn: committed.flushLsn };
}

function isSpoolFile(name: string): boolean {
  return /^[0-9A-F]{24}(\.partial)?$/.test(name) || /^[0-9A-F]{8}\.history$/.test(name) || name === SPOOL_STATE_FILE || name === SPOOL_COMMITTED_FILE;
}

/** Appends WAL to a spool; used by one sink at a time. */
export class WalSpoolWriter {
  readonly dir: string;
  #state: SpoolState | undefined;
  /** Next LSN to write on state.timeline. */
  #end = 0;
  #file: { handle: FileHandle; timeline: number; segno: number } | undefined;
  #dirDirty = false;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Current state (undefined before the first system record). */
  get state(): SpoolState | undefined {
    return this.#state;
  }

  /** Next LSN expected (end of WAL written, durable or not). */
  get end(): number {
    return this.#end;
  }

  /** Remove every spool file: a fresh start. */
  async reset(): Promise<void> {
    await this.#closeFile();
    for (const name of await readdir(this.dir)) {
      if (isSpoolFile(name)) await rm(join(this.dir, name), { force: true });
    }
    await fsyncDir(this.dir);
    this.#state = undefined;
    this.#end = 0;
    const board = boardOf(this.dir);
    board.state = undefined;
    board.committed = undefined;
  }

  /**
   * Cut everything past lsn on timeline (and any later timeline), so the
   * spool ends exactly where the checkpoint says. Fails when the spool
   * holds less than that.
   */
  async truncateTo(systemId: string, timeline: number, lsn: number): Promise<void> {
    await this.#closeFile();
    const state = await readSpoolState(this.dir);
    if (!state) throw new Error(`spool has no state file but the checkpoint is at ${formatLsn(lsn)}`);
    if (state.systemId !== systemId) throw new Error(`spool holds system ${state.systemId}, checkpoint ${systemId}`);
    const size = state.walSegmentSize;
    if (state.timeline < timeline || (state.timeline === timeline && state.flushLsn < lsn)) {
      throw new Error(`spool ends at ${formatLsn(state.flushLsn)} on timeline ${state.timeline}, checkpoint at ${formatLsn(lsn)} on ${timeline}`);
    }
    for (const name of await readdir(this.dir)) {
      const hist = /^([0-9A-F]{8})\.history$/.exec(name);
      if (hist && parseInt(hist[1], 16) > timeline) {
        await rm(join(this.dir, name));
        continue;
      }
      const seg = parseSegmentFileName(name.replace(PARTIAL_SUFFIX, ''), size);
      if (!seg) continue;
      const lastSeg = segmentOf(lsn, size);
      const atBoundary = lsn % size === 0;
      if (seg.timeline > timeline || (seg.timeline === timeline && (seg.segno > lastSeg || (seg.segno === lastSeg && atBoundary)))) {
        await rm(join(this.dir, name));
      } else if (seg.timeline === timeline && seg.segno === lastSeg) {
        // The segment holding the checkpoint LSN: back to .partial, cut at lsn.
        const partial = segmentFileName(timeline, seg.segno, size) + PARTIAL_SUFFIX;
        if (!name.endsWith(PARTIAL_SUFFIX)) await rename(join(this.dir, name), join(this.dir, partial));
        await truncate(join(this.dir, partial), lsn - segmentStart(lsn, size));
      }
    }
    this.#state = { ...state, timeline, flushLsn: lsn };
    this.#end = lsn;
    await writeFileAtomic(this.dir, SPOOL_STATE_FILE, JSON.stringify(this.#state));
    boardOf(this.dir).state = { ...this.#state };
  }

  /**
   * Publish where committed WAL ends. durable=false (after each checkpoint
   * CAS) skips the fsyncs: a crash can only lose the marker or leave an
   * older one, and recover() publishes the checkpoint's position again
   * (durable=true).
   */
  async commit(committed: SpoolCommitted, durable: boolean): Promise<void> {
    const text = JSON.stringify({ systemId: committed.systemId, timeline: committed.timeline, flushLsn: committed.flushLsn });
    if (durable) {
      await writeFileAtomic(this.dir, SPOOL_COMMITTED_FILE, text);
    } else {
      const tmp = join(this.dir, `.${SPOOL_COMMITTED_FILE}.tmp`);
      await writeFile(tmp, text);
      await rename(tmp, join(this.dir, SPOOL_COMMITTED_FILE));
    }
    // Readers in this process serve the new position at once.
    const board = boardOf(this.dir);
    board.committed = { systemId: committed.systemId, timeline: committed.timeline, flushLsn: committed.flushLsn };
    board.changed.emit(CHANGED);
  }

  /** Record the cluster identity (first system record of a fresh spool). */
  setSystem(system: { systemId: string; walSegmentSize: number; serverVersion: number; timeline: number }): void {
    if (this.#state) {
      this.#state.serverVersion = system.serverVersion;
      return;
    }
    this.#state = {
      systemId: system.systemId,
      walSegmentSize: system.walSegmentSize || DEFAULT_WAL_SEGMENT_SIZE,
      serverVersion: system.serverVersion,
      timeline: system.timeline,
      startLsn: -1,
      flushLsn: -1,
    };
  }

  /** Store a timeline history file (durable at return). */
  async writeHistory(timeline: number, content: Uint8Array): Promise<void> {
    await writeFileAtomic(this.dir, historyFileName(timeline), content);
  }

  /**
   * Write bytes at lsn on timeline. lsn must be the current end, except on
   * the first write of a fresh spool and at a timeline switch, where the new
   * timeline's segment is seeded with the old one's bytes before lsn (as
   * PostgreSQL does at promotion).
   */
  async write(timeline: number, lsn: number, bytes: Uint8Array): Promise<void> {
    const state = this.#state;
    if (!state) throw new Error('spool write before system identity');
    const size = state.walSegmentSize;
    if (state.startLsn < 0) {
      state.startLsn = lsn;
      state.timeline = timeline;
      this.#end = lsn;
    } else if (timeline !== state.timeline) {
      await this.#switchTimeline(timeline, lsn);
    } else if (lsn !== this.#end) {
      throw new Error(`spool write at ${formatLsn(lsn)}, end is ${formatLsn(this.#end)}`);
    }
    let pos = lsn;
    let offset = 0;
    while (offset < bytes.length) {
      const segno = segmentOf(pos, size);
      const handle = await this.#segment(timeline, segno);
      const within = pos - segno * size;
      const n = Math.min(bytes.length - offset, size - within);
      await handle.write(bytes, offset, n, within);
      offset += n;
      pos += n;
      this.#end = pos;
      if (within + n === size) await this.#completeSegment();
    }
  }

  async #switchTimeline(timeline: number, lsn: number): Promise<void> {
    const state = this.#state!;
    const size = state.walSegmentSize;
    if (timeline < state.timeline) throw new Error(`spool at timeline ${state.timeline}, got WAL of timeline ${timeline}`);
    if (lsn > this.#end) throw new Error(`timeline ${timeline} starts at ${formatLsn(lsn)} past spool end ${formatLsn(this.#end)}`);
    await this.#closeFile();
    const within = lsn % size;
    if (within > 0) {
      // Seed the new timeline's segment with the old timeline's bytes before the switch.
      const segno = segmentOf(lsn, size);
      const old = await openSegmentForRead(this.dir, state.timeline, segno, size);
      const head = Buffer.alloc(within);
      if (old) {
        try {
          await old.read(head, 0, within, 0);
        } finally {
          await old.close();
        }
      }
      const h = await this.#segment(timeline, segno);
      await h.write(head, 0, within, 0);
    }
    state.timeline = timeline;
    this.#end = lsn;
  }

  async #segment(timeline: number, segno: number): Promise<FileHandle> {
    if (this.#file && this.#file.timeline === timeline && this.#file.segno === segno) return this.#file.handle;
    await this.#closeFile();
    const name = segmentFileName(timeline, segno, this.#state!.walSegmentSize) + PARTIAL_SUFFIX;
    const handle = await open(join(this.dir, name), fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
    this.#file = { handle, timeline, segno };
    this.#dirDirty = true;
    return handle;
  }

  /** The current segment is full: fsync it and give it its final name. */
  async #completeSegment(): Promise<void> {
    const f = this.#file!;
    this.#file = undefined;
    await f.handle.sync();
    await f.handle.close();
    const name = segmentFileName(f.timeline, f.segno, this.#state!.walSegmentSize);
    await rename(join(this.dir, name + PARTIAL_SUFFIX), join(this.dir, name));
    this.#dirDirty = true;
  }

  async #closeFile(): Promise<void> {
    const f = this.#file;
    this.#file = undefined;
    if (f) {
      await f.handle.sync();
      await f.handle.close();
    }
  }

  /** Make everything written durable and publish the new end; returns the state. */
  async flush(): Promise<SpoolState | undefined> {
    const state = this.#state;
    if (!state || state.startLsn < 0) return undefined;
    await this.#file?.handle.sync();
    if (this.#dirDirty) {
      await fsyncDir(this.dir);
      this.#dirDirty = false;
    }
    if (state.flushLsn !== this.#end) {
      state.flushLsn = this.#end;
      await writeFileAtomic(this.dir, SPOOL_STATE_FILE, JSON.stringify(state));
      const board = boardOf(this.dir);
      board.state = { ...state };
      board.changed.emit(CHANGED);
    }
    return { ...state };
  }

  /** Close the open segment. */
  async close(): Promise<void> {
    await this.#closeFile();
  }
}

/** Open a segment of the spool by its complete or .partial name (undefined if neither). */
async function openSegmentForRead(dir: string, timeline: number, segno: number, size: number): Promise<FileHandle | undefined> {
  const name = segmentFileName(timeline, segno, size);
  // Complete first, then partial, then complete again: a rename may happen in between.
  for (const candidate of [name, name + PARTIAL_SUFFIX, name]) {
    try {
      return await open(join(dir, candidate), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return undefined;
}

/** Reads committed WAL out of a spool (the walsender endpoint's view). */
export class WalSpoolReader {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Current state cut to the committed position; undefined while nothing is committed. */
  async state(): Promise<SpoolState | undefined> {
    return await committedViewOf(this.dir);
  }

  /** Content of a timeline's history file, undefined if absent. */
  async history(timeline: number): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.dir, historyFileName(timeline)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * Where WAL of timeline ends as the latest timeline's history records it
   * (the switch point), or the durable end for the latest timeline itself.
   * Undefined for a timeline the spool does not know.
   */
  async timelineEnd(state: SpoolState, timeline: number): Promise<{ end: number; next?: number } | undefined> {
    if (timeline === state.timeline) return { end: state.flushLsn };
    if (timeline > state.timeline) return undefined;
    const hist = await this.history(state.timeline);
    if (!hist) return undefined;
    const switches = parseHistory(hist.toString('utf8'));
    const i = switches.findIndex((s) => s.timeline === timeline);
    if (i < 0) return undefined;
    return { end: switches[i].switchLsn, next: switches[i + 1]?.timeline ?? state.timeline };
  }

  /** Read up to maxBytes at lsn on timeline, never past end nor a segment boundary. */
  async read(state: SpoolState, timeline: number, lsn: number, end: number, maxBytes: number): Promise<Buffer> {
    const cursor = this.cursor();
    try {
      return await cursor.read(state, timeline, lsn, end, maxBytes);
    } finally {
      await cursor.close();
    }
  }

  /** A cursor for one reader that reads on through the WAL (a streaming standby): it keeps its segment open. */
  cursor(): WalReadCursor {
    return new WalReadCursor(this.dir);
  }

  /**
   * Wait until the committed end moves past lsn (or timeoutMs passes, or
   * signal aborts); returns the state then. Woken by the writer of this
   * spool in the same process (the sink's commit), not by a poll; a writer
   * in another process is seen at the timeout (the caller's keepalive).
   */
  async waitForMore(lsn: number, timeoutMs: number, signal?: AbortSignal): Promise<SpoolState | undefined> {
    const notifier = boardOf(this.dir).changed;
    let wake: () => void = () => undefined;
    let changed = false;
    let expired = false;
    const onChange = (): void => {
      changed = true;
      wake();
    };
    const onEnd = (): void => {
      expired = true;
      wake();
    };
    // Listen before reading, so a commit between the read and the wait is not missed.
    notifier.on(CHANGED, onChange);
    const timer = setTimeout(onEnd, timeoutMs);
    timer.unref();
    signal?.addEventListener('abort', onEnd);
    try {
      for (;;) {
        changed = false;
        const s = await this.state();
        if ((s && s.flushLsn > lsn) || expired || signal?.aborted) return s;
        // Nothing new since the read: sleep until the writer or the timer wakes us.
        if (!changed) await new Promise<void>((r) => (wake = r));
      }
    } finally {
      clearTimeout(timer);
      notifier.off(CHANGED, onChange);
      signal?.removeEventListener('abort', onEnd);
    }
  }
}

/**
 * Reads committed WAL for one reader moving forward through the spool,
 * keeping the segment it last read open: a standby catching up is served
 * in 128 KiB messages, and an open, read and close per message cost as
 * much CPU as the read (measured with bench-wal). WAL at a position of a
 * timeline never changes once committed, and a rename (.partial to
 * complete) keeps the open file; a read that comes up short on the kept
 * file (the writer replaced it) opens the segment again once.
 */
export class WalReadCursor {
  readonly dir: string;
  #open: { handle: FileHandle; systemId: string; timeline: number; segno: number } | undefined;

  constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Read up to maxBytes at lsn on timeline, never past end nor a segment
   * boundary, into a new buffer after headroom free bytes (for the
   * caller's message headers: the WAL is not copied again).
   */
  async read(state: SpoolState, timeline: number, lsn: number, end: number, maxBytes: number, headroom = 0): Promise<Buffer> {
    const size = state.walSegmentSize;
    const segno = segmentOf(lsn, size);
    const n = Math.min(maxBytes, end - lsn, (segno + 1) * size - lsn);
    if (n <= 0) return Buffer.alloc(headroom);
    return (await this.readPieces(state, timeline, lsn, end, [n], headroom))[0];
  }

  /**
   * Read consecutive pieces of lengths bytes from lsn on timeline, all in
   * lsn's segment and before end, each into a new buffer after headroom
   * free bytes, with one read call (readv): a standby catching up is sent
   * 128 KiB messages, and a read per message cost a thread pool round trip
   * each (the destination's main thread handed off four times per 512 KiB
   * frame for it). Throws when the pieces leave the segment or pass end.
   */
  async readPieces(state: SpoolState, timeline: number, lsn: number, end: number, lengths: number[], headroom = 0): Promise<Buffer[]> {
    const size = state.walSegmentSize;
    const segno = segmentOf(lsn, size);
    const total = lengths.reduce((sum, n) => sum + n, 0);
    if (lsn + total > Math.min(end, (segno + 1) * size) || lengths.some((n) => n <= 0)) {
      throw new Error(`read of ${total} bytes at ${formatLsn(lsn)} passes ${formatLsn(Math.min(end, (segno + 1) * size))}`);
    }
    const pieces = lengths.map((n) => Buffer.allocUnsafe(headroom + n));
    const views = pieces.map((b) => b.subarray(headroom));
    for (let attempt = 0; ; attempt++) {
      const kept = this.#open;
      const handle = kept && kept.systemId === state.systemId && kept.timeline === timeline && kept.segno === segno ? kept.handle : await this.#reopen(state, timeline, segno);
      const { bytesRead } = await handle.readv(views, lsn - segno * size);
      if (bytesRead === total) return pieces;
      await this.close();
      if (attempt > 0) throw new Error(`segment ${segmentFileName(timeline, segno, size)} shorter than ${formatLsn(lsn + total)}`);
    }
  }

  async #reopen(state: SpoolState, timeline: number, segno: number): Promise<FileHandle> {
    await this.close();
    const handle = await openSegmentForRead(this.dir, timeline, segno, state.walSegmentSize);
    if (!handle) throw new Error(`segment ${segmentFileName(timeline, segno, state.walSegmentSize)} missing from spool`);
    this.#open = { handle, systemId: state.systemId, timeline, segno };
    return handle;
  }

  /** Close the kept segment. */
  async close(): Promise<void> {
    const kept = this.#open;
    this.#open = undefined;
    await kept?.handle.close();
  }
}
