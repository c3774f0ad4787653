// `npm run soak -- --minutes N [--seed S] [--faults kill,carrier,etcd,disk]
// [--events N] [--json PATH]`: a lab tool, not part of the shipped CLI.
// Prints the summary, writes the JSON report, exits 0 only when the run
// passed (1 when it found a failure, 2 on bad arguments or a lab that did
// not start, 130 when interrupted).

import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FAULT_KINDS, parseFaults } from './chaos-plan.ts';
import { formatSummary } from './report.ts';
import { runSoak } from './soak.ts';

const USAGE = `Usage: npm run soak -- [--minutes N] [--seed S] [--faults LIST] [--events N] [--disk-mib N] [--etcd-compaction D] [--json PATH]

  --minutes N          length of the chaos phase (default 5; setup, catch-up and audit add ~1-2 min)
  --seed S             seed of the chaos script and the load (default 1)
  --faults LIST        comma-separated fault kinds from ${FAULT_KINDS.join(',')} (default all)
  --events N           most events to inject (default one per 5 s of chaos)
  --disk-mib N         size of the sink tmpfs in MiB (default 192 + 32 per minute; mounting needs root)
  --etcd-compaction D  etcd members compact their history every D, e.g. 5s (default never)
  --json PATH          where to write the JSON report (default <tmp>/dwcp-soak-<seed>-<time>.json);
                       the agents' logs go to PATH without .json plus -logs/
`;

/** Parse a positive number option or fail naming it. */
function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: want a positive number, got "${text}"`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      minutes: { type: 'string' },
      seed: { type: 'string' },
      faults: { type: 'string' },
      events: { type: 'string' },
      'disk-mib': { type: 'string' },
      'etcd-compaction': { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const minutes = positive('minutes', values.minutes, 5);
  const seed = Math.floor(positive('seed', values.seed, 1));
  const faults = parseFaults(values.faults ?? FAULT_KINDS.join(','));
  const maxEvents = values.events === undefined ? undefined : Math.floor(positive('events', values.events, 1));
  const diskBytes = values['disk-mib'] === undefined ? undefined : Math.floor(positive('disk-mib', values['disk-mib'], 0) * 1024 * 1024);
  const jsonPath = values.json ?? join(tmpdir(), `dwcp-soak-${seed}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);

  const report = await runSoak({ chaosMs: Math.round(minutes * 60_000), seed, faults, maxEvents, diskBytes, etcdCompaction: values['etcd-compaction'], logDir: jsonPath.replace(/\.json$/, '') + '-logs', log: (line) => process.stderr.write(`${line}\n`) });
  process.stdout.write(`${formatSummary(report)}\n`);
  await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`report: ${jsonPath} (agent logs beside it, in -logs/)\n`);
  if (report.harnessErrors.some((e) => e.startsWith('run aborted'))) return 130;
  return report.verdict === 'pass' ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`soak: ${err.message}\n`);
    process.exit(2);
  },
);
