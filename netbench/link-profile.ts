// Emulated WAN link profiles for lab mode.

/** Per-direction properties of an emulated link (both directions alike). */
export interface LinkProfile {
  /** One-way delay, milliseconds (RTT is twice this). */
  delayMs: number;
  /** Uniform +-jitter on the one-way delay, milliseconds; packets stay in order. Default 0. */
  jitterMs?: number;
  /** Loss probability per MTU-sized packet, 0..1 (0.01 = 1 %). */
  loss: number;
  /** Link rate, Mbit/s; 0 means unlimited. */
  rateMbit: number;
  /** Drop-tail queue in front of the rate limiter, milliseconds at rate. Default 50. */
  queueMs?: number;
  /** MTU of the emulated link, bytes. Default 1500. */
  mtu?: number;
  /** PRNG seed for loss and jitter, so runs repeat; default: time-based. */
  seed?: number;
}

/** Same metro area: 10 ms RTT, no loss, 1 Gbit/s. */
export const METRO: LinkProfile = { delayMs: 5, loss: 0, rateMbit: 1000 };

/** Across a continent: 50 ms RTT, 0.1 % loss, 1 Gbit/s. */
export const CONTINENTAL: LinkProfile = { delayMs: 25, loss: 0.001, rateMbit: 1000 };

/** Between continents: 100 ms RTT, 1 % loss, 1 Gbit/s. */
export const INTERCONTINENTAL: LinkProfile = { delayMs: 50, loss: 0.01, rateMbit: 1000 };

/** Geostationary satellite: 600 ms RTT, 2 % loss, 100 Mbit/s. */
export const SATELLITE: LinkProfile = { delayMs: 300, loss: 0.02, rateMbit: 100 };

/** The named profiles, by name. */
export const PROFILES: Readonly<Record<string, LinkProfile>> = {
  metro: METRO,
  continental: CONTINENTAL,
  intercontinental: INTERCONTINENTAL,
  satellite: SATELLITE,
};

/** Throw naming the field if a profile is out of range. */
export function validateProfile(p: LinkProfile): void {
  const check = (field: string, value: number | undefined, min: number, max: number): void => {
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      throw new Error(`link profile: ${field} must be a number in [${min}, ${max}], got ${String(value)}`);
    }
  };
  check('delayMs', p.delayMs, 0, 60_000);
  check('jitterMs', p.jitterMs, 0, 60_000);
  check('loss', p.loss, 0, 1);
  check('rateMbit', p.rateMbit, 0, 100_000);
  check('queueMs', p.queueMs, 0, 60_000);
  check('mtu', p.mtu, 576, 65_535);
  check('seed', p.seed, 0, Number.MAX_SAFE_INTEGER);
  if (p.delayMs === undefined || p.loss === undefined || p.rateMbit === undefined) {
    throw new Error('link profile: delayMs, loss and rateMbit are required');
  }
}
