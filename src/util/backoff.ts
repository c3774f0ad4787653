// The one retry backoff of the code base: exponential, capped and jittered.
// Every retry loop (link reconnects, carrier redials, lease grants, member
// registration, stream sessions after a fault) takes its delays from here,
// so a fleet of agents that failed together does not retry in lockstep.

/** Share of each delay that is random: delays fall in [(1 - JITTER) * d, d]. */
export const BACKOFF_JITTER = 0.5;

/** Options of a backoff. */
export interface BackoffOptions {
  /** First delay before jitter, ms. */
  initialMs: number;
  /** Largest delay before jitter, ms. */
  maxMs: number;
  /** Random source in [0, 1); tests pass a fixed one. Default Math.random. */
  random?: () => number;
}

/** Capped exponential backoff with jitter: each next() doubles the base up to maxMs. */
export class Backoff {
  private readonly options: BackoffOptions;
  private baseMs: number;
  private count = 0;

  constructor(options: BackoffOptions) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs)) {
      throw new Error(`backoff: need 0 < initialMs <= maxMs, got initialMs ${options.initialMs} and maxMs ${options.maxMs}`);
    }
    this.options = options;
    this.baseMs = options.initialMs;
  }

  /** The delay before the next attempt, ms; the following one doubles (up to maxMs). */
  next(): number {
    const random = this.options.random ?? Math.random;
    const delay = this.baseMs * (1 - BACKOFF_JITTER * random());
    this.baseMs = Math.min(this.baseMs * 2, this.options.maxMs);
    this.count++;
    return Math.round(delay);
  }

  /** Attempts delayed since the last reset. */
  get attempts(): number {
    return this.count;
  }

  /** Progress was made: the next delay is initialMs again. */
  reset(): void {
    this.baseMs = this.options.initialMs;
    this.count = 0;
  }
}

/** Resolve after ms (an unref'ed timer: a pending retry never keeps the process alive). */
export function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Options of retryAtStart. */
export interface StartRetryOptions {
  /** What is being done, for the error (e.g. 'register member'). */
  what: string;
  /** Give up when the next attempt would start after this long, ms. */
  timeoutMs: number;
  initialMs: number;
  maxMs: number;
  /** Told about each failed attempt that will be retried, with the delay. */
  onRetry(err: Error, delayMs: number): void;
}

/**
 * Run fn until it succeeds, with backoff, for at most timeoutMs: at an
 * agent's start the consensus store may be slow for a while (a member down,
 * a leader election), and one timed-out call must not fail the start.
 */
export async function retryAtStart<T>(fn: () => Promise<T>, options: StartRetryOptions): Promise<T> {
  const backoff = new Backoff({ initialMs: options.initialMs, maxMs: options.maxMs });
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const delayMs = backoff.next();
      if (Date.now() + delayMs > deadline) throw new Error(`${options.what}: gave up after ${options.timeoutMs} ms: ${(err as Error).message}`, { cause: err });
      options.onRetry(err as Error, delayMs);
      await sleepMs(delayMs);
    }
  }
}
