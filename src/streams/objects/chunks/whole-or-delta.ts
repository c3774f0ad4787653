// Whether a changed file goes whole or by chunk query and deltas (stage
// delta@1), pure: a query costs a round trip before the file's first byte
// can go, and the bytes it saves are at most the file's size. A small file
// that the link carries in less than one round trip is sent whole: measured
// on a 1 Gbit/s, 100 ms path (12.5 MB a round trip), 301 changed files of
// 4..64 KiB spent their step waiting on queries to save a few KiB each.

import type { LinkEstimate } from '../../stream.ts';
import { DELTA_MIN_FILE_BYTES } from './delta-plan.ts';
import { DEDUP_MIN_FILE_BYTES } from './recipe-plan.ts';

/**
 * True when a changed file of sizeBytes, of which the destination holds an
 * older version, should go whole rather than by chunk query and deltas:
 * always below DELTA_MIN_FILE_BYTES; never from DEDUP_MIN_FILE_BYTES (its
 * chunks may be held anywhere, and it goes by recipe with or without
 * deltas); in between when it is at most what the link carries in one
 * round trip (rate x RTT). An unknown link (null, or no RTT or rate measured
 * yet) keeps the delta, which saves bytes.
 */
export function changedFileGoesWhole(sizeBytes: number, link: LinkEstimate | null): boolean {
  if (sizeBytes < DELTA_MIN_FILE_BYTES) return true;
  if (sizeBytes >= DEDUP_MIN_FILE_BYTES) return false;
  if (link === null || !(link.rttMs > 0) || !(link.bytesPerS > 0) || !Number.isFinite(link.rttMs) || !Number.isFinite(link.bytesPerS)) return false;
  return sizeBytes <= (link.bytesPerS * link.rttMs) / 1000;
}
