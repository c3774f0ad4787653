// The chaos script of a soak run: a pure function of a seed, the enabled
// fault kinds and a bound on the event count. It says what to break, where
// and for how long; the runner (inject.ts) does it. Kinds take turns in
// seeded rounds so every enabled kind shows up early even in a short run;
// kills alternate between the sending and the receiving side; the second
// etcd event takes two members of one region down at once (quorum lost for
// longer than a lease), every other etcd event one member (quorum kept).

import { prng } from '../src/cli/sample-tree.ts';

/** Fault kinds a run can inject (`--faults`). */
export const FAULT_KINDS = ['kill', 'carrier', 'etcd', 'disk'] as const;
/** One fault kind. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Which side's consensus store an etcd event hits. */
export type RegionSide = 'source' | 'destination';
/** Which stream's sender a sender kill picks. */
export type StreamKind = 'objects' | 'pg-wal';

/** What one event does. */
export type ChaosAction =
  | { type: 'kill-sender'; stream: StreamKind }
  | { type: 'kill-receiver' }
  | { type: 'cut-carriers'; cuts: number }
  | { type: 'etcd-restart'; side: RegionSide; members: number[] }
  | { type: 'disk-full' };

/** One planned event. */
export interface PlannedEvent {
  /** 1-based position in the script. */
  index: number;
  kind: FaultKind;
  action: ChaosAction;
  /** Quiet time before the event (after the previous one recovered), ms. */
  gapMs: number;
  /** How long the fault lasts: agent or member down time, disk full time, spacing of carrier cuts, ms. */
  holdMs: number;
}

/** Members of each region's etcd cluster (the labs run three). */
export const ETCD_MEMBERS = 3;
/** Quiet time before each event, ms: from MIN to MIN + SPREAD. */
const GAP_MIN_MS = 1_000;
const GAP_SPREAD_MS = 2_000;
/** Down time of a killed agent or a single etcd member, ms. */
const DOWN_MIN_MS = 1_000;
const DOWN_SPREAD_MS = 2_000;
/** Both members of a quorum loss stay down this long: well past the 2 s lease TTL of the lab's agents. */
const QUORUM_LOSS_MIN_MS = 6_000;
const QUORUM_LOSS_SPREAD_MS = 2_000;
/** A full sink disk stays full this long, ms. */
const DISK_FULL_MIN_MS = 3_000;
const DISK_FULL_SPREAD_MS = 3_000;
/** Carrier cuts per event, and the time between two cuts, ms. */
const MAX_CUTS = 3;
const CUT_SPACING_MS = 500;

/** Parse `--faults kill,carrier,etcd,disk` (empty or duplicate names are errors). */
export function parseFaults(text: string): FaultKind[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new Error(`faults: empty list "${text}" (choose from ${FAULT_KINDS.join(',')})`);
  const kinds: FaultKind[] = [];
  for (const name of names) {
    if (!(FAULT_KINDS as readonly string[]).includes(name)) throw new Error(`faults: unknown kind "${name}" (choose from ${FAULT_KINDS.join(',')})`);
    if (kinds.includes(name as FaultKind)) throw new Error(`faults: kind "${name}" given twice`);
    kinds.push(name as FaultKind);
  }
  return kinds;
}

/** The script for a seed: at most maxEvents events, kinds in seeded rounds. */
export function planChaos(options: { seed: number; faults: readonly FaultKind[]; maxEvents: number }): PlannedEvent[] {
  const { seed, faults, maxEvents } = options;
  if (!Number.isSafeInteger(maxEvents) || maxEvents < 0) throw new Error(`plan chaos: maxEvents must be a non-negative integer, got ${maxEvents}`);
  if (faults.length === 0) return [];
  const rnd = prng(seed);
  const between = (min: number, spread: number): number => min + Math.floor(rnd() * spread);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)];

  const events: PlannedEvent[] = [];
  let nextKillSender = rnd() < 0.5;
  let etcdEvents = 0;
  while (events.length < maxEvents) {
    // One round: every enabled kind once, in a seeded order (Fisher-Yates).
    const round = [...faults];
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [round[i], round[j]] = [round[j], round[i]];
    }
    for (const kind of round) {
      if (events.length >= maxEvents) break;
      const gapMs = between(GAP_MIN_MS, GAP_SPREAD_MS);
      let action: ChaosAction;
      let holdMs: number;
      switch (kind) {
        case 'kill':
          action = nextKillSender ? { type: 'kill-sender', stream: pick(['objects', 'pg-wal'] as const) } : { type: 'kill-receiver' };
          nextKillSender = !nextKillSender;
          holdMs = between(DOWN_MIN_MS, DOWN_SPREAD_MS);
          break;
        case 'carrier':
          action = { type: 'cut-carriers', cuts: 1 + Math.floor(rnd() * MAX_CUTS) };
          holdMs = CUT_SPACING_MS;
          break;
        case 'etcd': {
          etcdEvents++;
          const side = pick(['source', 'destination'] as const);
          const first = Math.floor(rnd() * ETCD_MEMBERS);
          if (etcdEvents === 2) {
            action = { type: 'etcd-restart', side, members: [first, (first + 1) % ETCD_MEMBERS] };
            holdMs = between(QUORUM_LOSS_MIN_MS, QUORUM_LOSS_SPREAD_MS);
          } else {
            action = { type: 'etcd-restart', side, members: [first] };
            holdMs = between(DOWN_MIN_MS, DOWN_SPREAD_MS);
          }
          break;
        }
        case 'disk':
          action = { type: 'disk-full' };
          holdMs = between(DISK_FULL_MIN_MS, DISK_FULL_SPREAD_MS);
          break;
      }
      events.push({ index: events.length + 1, kind, action, gapMs, holdMs });
    }
  }
  return events;
}

/** A short human name of an action, e.g. "kill -9 sender of pg-wal". */
export function describeAction(action: ChaosAction): string {
  switch (action.type) {
    case 'kill-sender':
      return `kill -9 sender of ${action.stream}`;
    case 'kill-receiver':
      return 'kill -9 receiver';
    case 'cut-carriers':
      return `cut carriers x${action.cuts}`;
    case 'etcd-restart':
      return `restart ${action.side} etcd member${action.members.length > 1 ? 's' : ''} ${action.members.join('+')}${action.members.length > 1 ? ' (quorum lost)' : ''}`;
    case 'disk-full':
      return 'fill sink disk';
  }
}
