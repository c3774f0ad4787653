// A temp base with a sink root and a directory outside it, for objects sink
// tests that check nothing escapes the root.

import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** <tmp>/dwcp-objects-<name>-XXXX/{root,outside}; remove base afterwards. */
export function sinkRootAndOutside(name: string): { base: string; root: string; outside: string } {
  const base = mkdtempSync(join(tmpdir(), `dwcp-objects-${name}-`));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  return { base, root, outside };
}
