// A sender's own fence against being a zombie. A process stopped with
// SIGSTOP (or starved) through a failover resumes believing it still leads:
// its lease keepalive only learns otherwise one round trip later, and on
// resume Node runs ready socket callbacks before timers, so frames would go
// out first. The fence notices the pause itself (a ticker that did not tick)
// and, before another frame is sent, re-reads the leader key: only when it
// still holds this leader's epoch does sending continue.

import type { ConsensusStore } from '../consensus/consensus-store.ts';

/** How often the ticker records that the event loop ran. */
export const FENCE_TICK_MS = 100;
/** A gap between ticks longer than this means the process was paused or starved. */
export const FENCE_PAUSE_THRESHOLD_MS = 750;

/** Checks, cheaply per frame, that this process may still send as leader. */
export class LeadershipFence {
  private readonly store: ConsensusStore;
  private readonly key: string;
  private readonly epoch: number;
  private lastTick = performance.now();
  private verifiedAt = performance.now();
  private fenced: string | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly onFenced: (reason: string) => void;

  constructor(store: ConsensusStore, leaderKey: string, epoch: number, onFenced: (reason: string) => void) {
    this.store = store;
    this.key = leaderKey;
    this.epoch = epoch;
    this.onFenced = onFenced;
    this.timer = setInterval(() => {
      this.lastTick = performance.now();
    }, FENCE_TICK_MS);
    this.timer.unref();
  }

  /** Why this leader is fenced, or null while it may send. */
  get reason(): string | null {
    return this.fenced;
  }

  /**
   * Resolve true when another frame may be sent: at once while the event
   * loop has been ticking, else after re-reading the leader key.
   */
  async maySend(): Promise<boolean> {
    if (this.fenced) return false;
    const now = performance.now();
    const paused = now - this.lastTick > FENCE_PAUSE_THRESHOLD_MS;
    if (!paused) return true;
    const startedAt = performance.now();
    try {
      const kv = await this.store.get(this.key);
      if (kv === undefined || kv.modRevision !== this.epoch) {
        const holder = kv === undefined ? 'absent' : `at epoch ${kv.modRevision}`;
        this.fence(`paused ${Math.round(startedAt - this.lastTick)} ms; leader key ${this.key} is ${holder}, not this sender's epoch ${this.epoch}`);
        return false;
      }
    } catch (err) {
      this.fence(`paused; cannot confirm leadership of ${this.key} at epoch ${this.epoch}: ${(err as Error).message}`);
      return false;
    }
    this.verifiedAt = startedAt;
    this.lastTick = Math.max(this.lastTick, startedAt);
    return true;
  }

  /** Stop the ticker. */
  close(): void {
    clearInterval(this.timer);
  }

  private fence(reason: string): void {
    if (this.fenced) return;
    this.fenced = reason;
    this.close();
    this.onFenced(reason);
  }
}
