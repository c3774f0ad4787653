// Where a consensus store reports what it repaired, resumed or gave up on:
// a narrow logger defined at this layer (pino's Logger fits it), so the
// store does not import the agent. A store given none logs JSON to stderr,
// never nothing.

import { pino } from 'pino';

/** The two levels a store logs at; fields first, then the message (pino's order). */
export interface StoreLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Made on first use and shared by every store of the process. */
let fallback: StoreLogger | undefined;

/** The logger a store uses when its owner passed none: JSON lines on stderr. */
export function defaultStoreLogger(): StoreLogger {
  fallback ??= pino({ base: { component: 'consensus' } }, pino.destination(2));
  return fallback;
}
