// A tree of many small JSON and log files, like a config/status export: the
// shape stage dict@1 is for (each file too small to compress well alone,
// all of them alike). Deterministic for a seed.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prng } from '../../src/cli/sample-tree.ts';

/** A tree of n small JSON and log files, like a config/status export. */
export function writeSmallTree(root: string, n: number, seed: number): void {
  const rnd = prng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)];
  mkdirSync(join(root, 'status'), { recursive: true });
  mkdirSync(join(root, 'logs'), { recursive: true });
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      const doc = { apiVersion: 'dwcp.io/v1', kind: 'DWCPStream', metadata: { name: `stream-${i}`, namespace: pick(['prod', 'staging']) }, spec: { source: { region: pick(['eu-west-1', 'us-east-1']), path: `/data/${i}` }, destinations: [{ region: pick(['ap-south-1', 'sa-east-1']) }] }, status: { lagSeconds: Math.floor(rnd() * 100), durableSeq: Math.floor(rnd() * 1e6), conditions: [{ type: 'Ready', status: pick(['True', 'False']), reason: pick(['InSync', 'CatchingUp']) }] } };
      writeFileSync(join(root, 'status', `${i}.json`), JSON.stringify(doc, null, 2));
    } else {
      const lines = Array.from({ length: 5 + Math.floor(rnd() * 20) }, () => `2026-11-${10 + Math.floor(rnd() * 18)}T0${Math.floor(rnd() * 9)}:00Z ${pick(['INFO', 'WARN'])} stream ${Math.floor(rnd() * 50)} ${pick(['checkpoint committed', 'lease renewed', 'carrier reconnect'])} seq=${Math.floor(rnd() * 1e6)}`);
      writeFileSync(join(root, 'logs', `${i}.log`), lines.join('\n') + '\n');
    }
  }
}

