// WAL positions (LSNs) and pg_wal file names. An LSN is a 64-bit byte
// position, written by PostgreSQL as two hex halves "HI/LO"; here it is a
// number (safe to 2^53 bytes, far past any real cluster).

const TWO_32 = 0x1_0000_0000;

/** Default WAL segment size (initdb's default), bytes. */
export const DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024;

/** Parse "HI/LO" into a number; throws on malformed text. */
export function parseLsn(text: string): number {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new Error(`invalid LSN "${text}"`);
  return parseInt(m[1], 16) * TWO_32 + parseInt(m[2], 16);
}

/** Format a number as "HI/LO" the way PostgreSQL prints it. */
export function formatLsn(lsn: number): string {
  const hi = Math.floor(lsn / TWO_32);
  const lo = lsn % TWO_32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** Segment number holding lsn. */
export function segmentOf(lsn: number, segmentSize: number): number {
  return Math.floor(lsn / segmentSize);
}

/** First LSN of the segment holding lsn. */
export function segmentStart(lsn: number, segmentSize: number): number {
  return segmentOf(lsn, segmentSize) * segmentSize;
}

function hex8(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** pg_wal file name TTTTTTTTXXXXXXXXYYYYYYYY of a segment on a timeline. */
export function segmentFileName(timeline: number, segno: number, segmentSize: number): string {
  const perId = TWO_32 / segmentSize;
  return hex8(timeline) + hex8(Math.floor(segno / perId)) + hex8(segno % perId);
}

/** Parse a segment file name into timeline and segment number (undefined if not one). */
export function parseSegmentFileName(
  name: string,
  segmentSize: number,
): { timeline: number; segno: number } | undefined {
  const m = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/.exec(name);
  if (!m) return undefined;
  const perId = TWO_32 / segmentSize;
  return { timeline: parseInt(m[1], 16), segno: parseInt(m[2], 16) * perId + parseInt(m[3], 16) };
}

/** History file name of a timeline: TTTTTTTT.history. */
export function historyFileName(timeline: number): string {
  return `${hex8(timeline)}.history`;
}

/** One line of a timeline history file: parent timeline and where it ended. */
export interface TimelineSwitch {
  timeline: number;
  switchLsn: number;
}

/** Parse a history file's content ("tli<TAB>X/X<TAB>reason" lines). */
export function parseHistory(content: string): TimelineSwitch[] {
  const out: TimelineSwitch[] = [];
  for (const line of content.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [tli, lsn] = trimmed.split(/\s+/);
    out.push({ timeline: parseInt(tli, 10), switchLsn: parseLsn(lsn) });
  }
  return out;
}

/** Microseconds since 2000-01-01 (PostgreSQL's epoch) for a Date.now() value. */
export function pgTimestampMicros(nowMs: number = Date.now()): number {
  const PG_EPOCH_MS = 946_684_800_000;
  return (nowMs - PG_EPOCH_MS) * 1000;
}
