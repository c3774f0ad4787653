// File versions as the objects stream compares them: size, mtime in
// microseconds and permission bits. Content is never hashed; a file whose
// size, mtime and mode match is taken as unchanged (the rsync rule).

import type { BigIntStats } from 'node:fs';
import type { FileVersion } from '../../wire/messages.ts';

/** Allowed mtime difference in microseconds: utimes takes float seconds, which round. */
export const MTIME_TOLERANCE_US = 1;

/** Permission bits kept with a file (including setuid, setgid, sticky). */
export const MODE_MASK = 0o7777;

const NS_PER_US = 1000n;

/** The version of a file from its bigint lstat/fstat (mtime floored to microseconds). */
export function versionOf(st: Pick<BigIntStats, 'size' | 'mtimeNs' | 'mode'>): FileVersion {
  return {
    size: Number(st.size),
    mtimeUs: floorDiv(st.mtimeNs, NS_PER_US),
    mode: Number(st.mode) & MODE_MASK,
  };
}

/** Same size and mode, and mtimes within MTIME_TOLERANCE_US. */
export function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return a.size === b.size && a.mode === b.mode && Math.abs(a.mtimeUs - b.mtimeUs) <= MTIME_TOLERANCE_US;
}

/** Exactly the same size, mtime and mode (what a rename match or a partial resume needs). */
export function identicalVersion(a: FileVersion, b: FileVersion): boolean {
  return a.size === b.size && a.mode === b.mode && a.mtimeUs === b.mtimeUs;
}

// Floor division for bigint (bigint '/' truncates toward zero; mtimes before 1970 are negative).
function floorDiv(n: bigint, d: bigint): number {
  const q = n / d;
  return Number(n % d < 0n ? q - 1n : q);
}
