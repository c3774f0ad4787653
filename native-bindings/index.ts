// The one typed entry point to DWCP's native addon (build/dwcp_native.node):
// nothing else in the project loads the addon directly.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';

/** Where build.sh puts the addon and the link emulator. */
export const NATIVE_BUILD_DIR = fileURLToPath(new URL('./build/', import.meta.url));

/** Path of the dwcp-wanem link emulator binary built by build.sh. */
export const WANEM_PATH = `${NATIVE_BUILD_DIR}dwcp-wanem`;

const ADDON_PATH = `${NATIVE_BUILD_DIR}dwcp_native.node`;
const NOT_BUILT = 'native bindings not built: run npm run setup (needs gcc)';

/** A snapshot of the kernel's TCP_INFO for one socket. */
export interface TcpInfo {
  /** Smoothed round-trip time, microseconds. */
  rttUs: number;
  /** Round-trip time variation, microseconds. */
  rttVarUs: number;
  /** Congestion window, in segments. */
  sndCwnd: number;
  /** Sender maximum segment size, bytes. */
  sndMss: number;
  /** Retransmitted segments over the connection's life. */
  totalRetrans: number;
  /** Consecutive unrecovered retransmission timeouts right now. */
  retransmits: number;
  /** Segments currently considered lost. */
  lost: number;
  /** Most recent delivery rate estimate, bits per second. */
  deliveryRateBps: number;
  /** Current pacing rate, bits per second. */
  pacingRateBps: number;
  /** Bytes acknowledged by the peer. */
  bytesAcked: number;
  /** Bytes retransmitted. */
  bytesRetrans: number;
  /** Bytes sent, retransmissions included. */
  bytesSent: number;
  /** Minimum RTT seen, microseconds. */
  minRttUs: number;
  /** Bytes queued in the socket and not yet sent. */
  notsentBytes: number;
  /** Time the connection had data to send, microseconds (0 if unknown). */
  busyTimeUs?: number;
}

/**
 * What statAt reports of one entry (lstat: a symlink is reported, never
 * followed); the same fields and types as node:fs BigIntStats.
 */
export interface EntryStat {
  /** File type and permission bits (st_mode). */
  mode: bigint;
  /** Size in bytes. */
  size: bigint;
  /** Modification time, nanoseconds since the epoch. */
  mtimeNs: bigint;
}

/**
 * What readWholeBeneath reports of one file: its stat as opened (fstat, so
 * of the file itself, never a symlink's target), and its bytes when it is a
 * regular file of at most maxBytes.
 */
export interface WholeFileRead extends EntryStat {
  /** The bytes, read whole; undefined when not a regular file or larger than maxBytes. */
  data?: Buffer;
  /** True when data is not one version: the read came up short, or the file's inode, size, mtime, ctime or mode differed after it. */
  changed: boolean;
}

/**
 * The functions the C addon exports: socket options (native-bindings/src/
 * sockopt.c) and file operations beneath a directory (src/beneath.c).
 * The file operations run on libuv's thread pool and reject with an Error
 * whose code is the errno name (ELOOP, EXDEV, ENOENT ...).
 */
/** What renameManyBeneath did: entries [0, renamed) were renamed; error is entry renamed's failure, when one failed. */
export interface RenameManyResult {
  renamed: number;
  error?: NodeJS.ErrnoException;
}

export interface NativeBindings {
  /** TCP_INFO of the socket fd. */
  tcpInfo(fd: number): TcpInfo;
  /** Set TCP_CONGESTION (e.g. 'bbr'); throws naming an unknown algorithm. */
  setCongestion(fd: number, name: string): void;
  /** Current TCP_CONGESTION of the socket fd. */
  getCongestion(fd: number): string;
  /** Algorithms the kernel offers (tcp_available_congestion_control). */
  availableCongestion(): string[];
  /** SO_SNDBUF in bytes (the kernel doubles it for bookkeeping). */
  setSendBuffer(fd: number, bytes: number): void;
  /** SO_RCVBUF in bytes (the kernel doubles it for bookkeeping). */
  setRecvBuffer(fd: number, bytes: number): void;
  /** TCP_NOTSENT_LOWAT: bound on unsent bytes before the socket is writable. */
  setNotSentLowat(fd: number, bytes: number): void;
  /**
   * openat2(dirFd, path, flags | O_CLOEXEC, mode) with RESOLVE_BENEATH |
   * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: path stays beneath dirFd
   * (EXDEV otherwise) and no component, the last included, is a symlink
   * (ELOOP). Resolves to the new fd, which the caller closes.
   */
  openBeneath(dirFd: number, path: string, flags: number, mode: number): Promise<number>;
  /** lstat of the entry name of dirFd (one name, no '/'); undefined when missing. */
  statAt(dirFd: number, name: string): Promise<EntryStat | undefined>;
  /** mkdirat(dirFd, name, mode). */
  mkdirAt(dirFd: number, name: string, mode: number): Promise<void>;
  /** unlinkat(dirFd, name, 0): a file or symlink, never a directory. */
  unlinkAt(dirFd: number, name: string): Promise<void>;
  /** rm -r of the entry name of dirFd, never following a symlink; false when it was missing. */
  removeAt(dirFd: number, name: string): Promise<boolean>;
  /** Remove every entry of the directory dirFd except keep, never following a symlink. */
  clearDirAt(dirFd: number, keep?: string): Promise<void>;
  /** renameat2 between two directories' entries; noReplace fails with EEXIST instead of replacing. */
  renameAt(fromDirFd: number, fromName: string, toDirFd: number, toName: string, noReplace: boolean): Promise<void>;
  /**
   * syncfs(2) of the filesystem holding fd: everything written there reaches
   * the disk (and a writeback error since the fd was opened is reported),
   * one call for many files instead of an fsync each.
   */
  syncFs(fd: number): Promise<void>;
  /**
   * A small file's whole write in one thread-pool job: create path beneath
   * dirFd as openBeneath does (O_CREAT | O_EXCL: EEXIST when anything is
   * there, never opened), write all of data, fchmod to mode & 0o7777, set
   * mtime and atime to mtimeUs (microseconds since the epoch, before 1970
   * too), close. A failure after the create leaves the file behind for the
   * caller to remove. data must not be transferred until it settles.
   */
  writeWholeBeneath(dirFd: number, path: string, data: Uint8Array, mode: number, mtimeUs: number): Promise<void>;
  /**
   * Rename the entry fromName of fromDirFd to toPath in one job: toPath's
   * directory resolved beneath toDirFd as openBeneath does (ELOOP at a
   * symlink, EXDEV above it, ENOENT or ENOTDIR when missing), the last
   * segment one entry name; a file or symlink there is replaced, a
   * directory there removed first (never through a link).
   */
  renameBeneath(fromDirFd: number, fromName: string, toDirFd: number, toPath: string): Promise<void>;
  /**
   * renameBeneath of each fromNames[i] to toPaths[i], in order, in one job
   * (one thread-pool round trip for a checkpoint's files instead of one
   * each). The first failure stops it: nothing after that entry is tried,
   * so names change in the caller's order. Resolves to how many were
   * renamed and, when one failed, that entry's error (as renameBeneath's,
   * naming its target); a bad argument throws.
   */
  renameManyBeneath(fromDirFd: number, fromNames: readonly string[], toDirFd: number, toPaths: readonly string[]): Promise<RenameManyResult>;
  /**
   * A small file's whole read in one job: open the directory root (as
   * given, symlinks in it followed), path beneath it as openBeneath does
   * (O_NONBLOCK: a fifo never blocks), fstat; a regular file of at most
   * maxBytes is read whole and checked unchanged by a second fstat.
   */
  readWholeBeneath(root: string, path: string, maxBytes: number): Promise<WholeFileRead>;
  /** The open flag O_PATH (fs.constants lacks it): an fd that names a directory for *at calls. */
  readonly O_PATH: number;
}

let loaded: NativeBindings | undefined;

/** The addon, loaded once; throws a clear error if build.sh has not run. */
export function native(): NativeBindings {
  if (loaded !== undefined) return loaded;
  if (!existsSync(ADDON_PATH)) throw new Error(`${NOT_BUILT} (missing ${ADDON_PATH})`);
  const require = createRequire(import.meta.url);
  try {
    loaded = require(ADDON_PATH) as NativeBindings;
  } catch (err) {
    throw new Error(`${NOT_BUILT}: load ${ADDON_PATH}: ${(err as Error).message}`);
  }
  return loaded;
}

/** The OS file descriptor behind a connected net.Socket (or tls.TLSSocket). */
export function socketFd(socket: Socket): number {
  // Node keeps the fd on the libuv handle; TLS sockets wrap the TCP socket.
  const wrapped = socket as Socket & { _handle?: { fd?: number }; _parent?: Socket };
  const fd = wrapped._handle?.fd ?? (wrapped._parent ? socketFd(wrapped._parent) : undefined);
  if (typeof fd !== 'number' || fd < 0) {
    throw new Error('socket fd: unavailable (socket not connected, destroyed, or not a TCP socket)');
  }
  return fd;
}

/** TCP_INFO of a socket. */
export function tcpInfo(socket: Socket): TcpInfo {
  return native().tcpInfo(socketFd(socket));
}

/** Set the socket's congestion control algorithm, e.g. 'bbr'. */
export function setCongestion(socket: Socket, name: string): void {
  native().setCongestion(socketFd(socket), name);
}

/** The socket's congestion control algorithm. */
export function getCongestion(socket: Socket): string {
  return native().getCongestion(socketFd(socket));
}

/** Congestion control algorithms this kernel offers. */
export function availableCongestion(): string[] {
  return native().availableCongestion();
}

/** Set SO_SNDBUF on the socket, bytes. */
export function setSendBuffer(socket: Socket, bytes: number): void {
  native().setSendBuffer(socketFd(socket), bytes);
}

/** Set SO_RCVBUF on the socket, bytes. */
export function setRecvBuffer(socket: Socket, bytes: number): void {
  native().setRecvBuffer(socketFd(socket), bytes);
}

/** Set TCP_NOTSENT_LOWAT on the socket, bytes. */
export function setNotSentLowat(socket: Socket, bytes: number): void {
  native().setNotSentLowat(socketFd(socket), bytes);
}
