// When to look at a source tree again: on a (debounced) event of the
// store's watch (fs.watch under a directory's root), or when the periodic scan interval runs out, whichever
// comes first. The watch is only a hint that makes changes arrive sooner;
// the periodic scan is what guarantees they arrive (inotify can overflow,
// and some file systems never report events).

import { TEMP_DIR_NAME } from './object-paths.ts';
import type { ObjectsLogger } from './objects-logger.ts';
import type { ObjectStore, StoreWatcher } from './store/object-store.ts';

/** Quiet time after the last event before a rescan, in ms (editors write in bursts). */
export const WATCH_DEBOUNCE_MS = 200;

/** Longest a steady stream of events may postpone a rescan, in ms. */
export const WATCH_MAX_DELAY_MS = 2000;

/** Options of a ChangeTrigger. */
export interface ChangeTriggerOptions {
  /** The store whose watch (if it has one) wakes the scan sooner. */
  store: Pick<ObjectStore, 'description' | 'watch'>;
  /** Use the store's watch; false (or a store that cannot watch) leaves only the periodic scan. */
  watch: boolean;
  /** Longest wait between scans, in ms. */
  intervalMs: number;
  logger?: ObjectsLogger;
}

/** Wakes a scanning loop when its tree may have changed. */
export class ChangeTrigger {
  readonly #intervalMs: number;
  readonly #logger?: ObjectsLogger;
  #watcher?: StoreWatcher;
  /** An event arrived (and its debounce ran out) since the last clear(). */
  #changed = false;
  #debounce?: NodeJS.Timeout;
  #burstStartedAt = 0;
  #wake?: () => void;

  constructor(options: ChangeTriggerOptions) {
    this.#intervalMs = options.intervalMs;
    this.#logger = options.logger;
    if (!options.watch) return;
    // A failed watch falls back to the periodic scan alone.
    this.#watcher = options.store.watch?.(
      (rel) => this.#onEvent(rel),
      (err) => {
        this.#logger?.warn({ store: options.store.description, err: err.message }, 'file watch failed; relying on periodic scans');
        this.#watcher?.close();
        this.#watcher = undefined;
      },
    );
  }

  /** Forget changes seen so far: call right before a scan, which will see them. */
  clear(): void {
    this.#changed = false;
  }

  /** Resolve at the next change, at the end of the scan interval, or on abort. */
  wait(signal: AbortSignal): Promise<void> {
    if (this.#changed || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.#intervalMs);
      timer.unref();
      signal.addEventListener('abort', done);
      this.#wake = done;
    });
  }

  /** Stop watching and release timers. */
  close(): void {
    clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#wake?.();
  }

  // Debounce events: fire after a quiet spell, or at the latest WATCH_MAX_DELAY_MS into a burst.
  #onEvent(rel: string): void {
    if (rel === TEMP_DIR_NAME || rel.startsWith(`${TEMP_DIR_NAME}/`)) return;
    const now = Date.now();
    if (this.#debounce === undefined) this.#burstStartedAt = now;
    clearTimeout(this.#debounce);
    const delay = Math.max(0, Math.min(WATCH_DEBOUNCE_MS, this.#burstStartedAt + WATCH_MAX_DELAY_MS - now));
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.#changed = true;
      this.#wake?.();
    }, delay);
    this.#debounce.unref();
  }
}
