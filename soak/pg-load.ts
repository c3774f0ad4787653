// pgbench on the primary for as long as a soak loads it: short rate-limited
// runs back to back (each ends by itself, so a stop waits at most one run),
// counting the transactions pgbench reports.

import type { Pg } from '../src/cli/postgres-lab.ts';

/** Length of one pgbench run, seconds. */
const RUN_SECONDS = 4;
/** Clients of each run. */
const CLIENTS = 2;

/** A running load. */
export interface PgLoad {
  /** Transactions processed by finished runs. */
  transactions(): number;
  /** Stop after the run in progress; resolves when it ended. */
  stop(): Promise<void>;
}

/** Start pgbench runs at ratePerSecond transactions a second (tables from `pgbench -i` must exist). */
export function startPgLoad(primary: Pg, options: { seed: number; ratePerSecond: number; onError: (err: Error) => void }): PgLoad {
  let stopped = false;
  let transactions = 0;
  let run = 0;
  const loop = (async () => {
    while (!stopped) {
      run++;
      try {
        const out = await primary.pgbench(['-n', `--random-seed=${options.seed + run}`, '-c', String(CLIENTS), '-T', String(RUN_SECONDS), '-R', String(options.ratePerSecond)]);
        const processed = /number of transactions actually processed: (\d+)/.exec(out);
        if (processed === null) throw new Error(`no transaction count in its output: ${out.slice(-300)}`);
        transactions += Number(processed[1]);
      } catch (err) {
        options.onError(new Error(`pgbench run ${run}: ${(err as Error).message}`, { cause: err }));
        if (!stopped) await new Promise((r) => setTimeout(r, RUN_SECONDS * 1000));
      }
    }
  })();
  return {
    transactions: () => transactions,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
