// Reading child processes that speak one JSON object per line (netbench's
// runners), and waiting for what they say.

import { createInterface } from 'node:readline';

/** One parsed line. */
export type Line = Record<string, unknown>;

/** The JSON lines of a stream, collected as they arrive (other lines are skipped). */
export function jsonLines(stream: NodeJS.ReadableStream): Line[] {
  const out: Line[] = [];
  createInterface({ input: stream }).on('line', (t) => {
    try {
      out.push(JSON.parse(t) as Line);
    } catch {
      // not a JSON line
    }
  });
  return out;
}

/** Poll every 50 ms until ok() holds; throw naming `what` after timeoutMs. */
export async function until(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
