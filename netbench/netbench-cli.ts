// `dwcp netbench lab|live`: argument parsing and terminal output around
// runNetbench (lab) and a bounded link run against a real peer (live).

import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { PROFILES, type LinkProfile } from './lab.ts';
import { runNetbench } from './netbench.ts';
import { BENCH_TRANSPORTS } from './report.ts';
import { runObjectsWorkload, WORKLOAD_CCS } from './objects-workload.ts';
import { objectsMarkdown } from './workload-report.ts';
import { runWalWorkload } from './wal-workload.ts';
import { walMarkdown } from './wal-report.ts';
import { parseSize } from '../src/config/units.ts';

const USAGE = `Usage:
  dwcp netbench lab --profile metro|continental|intercontinental|satellite
                    [--rtt-ms N --loss F --rate-mbit N]  (custom link; overrides the profile)
                    [--duration S] [--adaptive-duration S] [--sweep 1,2,4,...] [--sweep-cc bbr,cubic]
                    [--max-streams N] [--transport tls,ws,quic,auto] [--out DIR]
      (DWCP rows per carrier kind: TLS, WebSocket, QUIC, and auto, which measures and chooses;
       default all four)
  dwcp netbench lab --workload objects [--profile NAME] [--cc bbr|cubic] [--size 1GiB] [--largest SIZE]
                    [--out DIR] [--keep]
      (a generated tree: rsync -a, rsync -az and DWCP agents, initial sync then 10 % changed,
       1 % added, 1 % deleted; time to identical, wire bytes, CPU and peak RSS per side)
  dwcp netbench lab --workload wal [--profile NAME] [--cc bbr|cubic] [--backlog 1GB] [--pgbench-seconds 60]
                    [--scale 10] [--clients 4] [--rate 400] [--out DIR]
      (a primary in one namespace, a native and a DWCP-fed standby in the other: backlog catch-up,
       then pgbench replay lag p50/p95/max; bytes on the link per path)
  dwcp netbench live --peer HOST:PORT --pki DIR [--duration S]
`;

/** Default sweeps: bbr up to a few flows, cubic up to hundreds. */
const DEFAULT_SWEEP: Record<string, number[]> = { bbr: [1, 2, 4, 8], cubic: [1, 8, 64, 256, 512] };
/** Adaptive rows need ramp-up: seconds per profile. */
const ADAPTIVE_SECONDS: Record<string, number> = { metro: 30, continental: 30, intercontinental: 40, satellite: 90 };

/** Entry point; returns the exit code. */
export async function netbenchCommand(args: string[]): Promise<number> {
  // Ctrl-C or SIGTERM: exit through process.exit so lab.ts tears down its namespaces and emulator.
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  const [sub, ...rest] = args;
  if (sub === 'lab') return lab(rest);
  if (sub === 'live') return live(rest);
  process.stderr.write(USAGE);
  return 2;
}

async function lab(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      profile: { type: 'string', default: 'intercontinental' }, duration: { type: 'string', default: '20' },
      'adaptive-duration': { type: 'string' }, sweep: { type: 'string' }, 'sweep-cc': { type: 'string', default: 'bbr,cubic' },
      'max-streams': { type: 'string', default: '512' }, out: { type: 'string' }, transport: { type: 'string', default: BENCH_TRANSPORTS.join(',') },
      'rtt-ms': { type: 'string' }, loss: { type: 'string' }, 'rate-mbit': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      workload: { type: 'string' }, cc: { type: 'string', default: 'bbr' }, size: { type: 'string', default: '1GiB' },
      largest: { type: 'string' }, keep: { type: 'boolean', default: false },
      backlog: { type: 'string', default: '1GB' }, 'pgbench-seconds': { type: 'string', default: '60' },
      scale: { type: 'string', default: '10' }, clients: { type: 'string', default: '4' }, rate: { type: 'string', default: '400' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const base = PROFILES[values.profile];
  if (!base) throw new Error(`netbench: --profile must be one of ${Object.keys(PROFILES).join(', ')}, got "${values.profile}"`);
  const custom = values['rtt-ms'] !== undefined || values.loss !== undefined || values['rate-mbit'] !== undefined;
  const profile: LinkProfile = {
    ...base,
    ...(values['rtt-ms'] !== undefined ? { delayMs: Number(values['rtt-ms']) / 2 } : {}),
    ...(values.loss !== undefined ? { loss: Number(values.loss) } : {}),
    ...(values['rate-mbit'] !== undefined ? { rateMbit: Number(values['rate-mbit']) } : {}),
  };
  const name = custom ? 'custom' : values.profile;
  if (values.workload !== undefined) return workload(values.workload, name, profile, values);
  const ccs = values['sweep-cc'].split(',').filter(Boolean);
  const counts = values.sweep?.split(',').map(Number);
  if (counts?.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`netbench: --sweep must be positive integers, got "${values.sweep}"`);
  const sweep = ccs.map((cc) => ({ cc, flows: counts ?? DEFAULT_SWEEP[cc] ?? [1] }));
  const transports = values.transport.split(',').filter(Boolean) as Array<(typeof BENCH_TRANSPORTS)[number]>;
  const badKind = transports.find((k) => !BENCH_TRANSPORTS.includes(k));
  if (badKind !== undefined || transports.length === 0) throw new Error(`netbench: --transport must list ${BENCH_TRANSPORTS.join(', ')}, got "${values.transport}"`);
  const out = values.out ?? `./bench-out/netbench-${name}/`;
  const started = performance.now();
  const result = await runNetbench({
    transports,
    name, profile, seconds: Number(values.duration),
    adaptiveSeconds: Number(values['adaptive-duration'] ?? ADAPTIVE_SECONDS[values.profile] ?? 40),
    sweep, maxStreams: Number(values['max-streams']), out,
    progress: (line) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0)}s] ${line}\n`),
  });
  const { markdownTable } = await import('./report.ts');
  process.stdout.write('\n' + markdownTable(result.name, result.profile, result.rows) + '\n');
  process.stdout.write(`wrote ${result.files.markdown}, ${result.files.json}, ${result.files.svg.join(', ')}\n`);
  return 0;
}

/** `--workload objects|wal`: one workload over the lab, DWCP against the plain tools. */
async function workload(kind: string, name: string, profile: LinkProfile,
  values: { cc: string; size: string; largest?: string; out?: string; keep: boolean; backlog: string; 'pgbench-seconds': string; scale: string; clients: string; rate: string }): Promise<number> {
  if (kind !== 'objects' && kind !== 'wal') throw new Error(`netbench: --workload must be objects or wal, got "${kind}"`);
  if (!(WORKLOAD_CCS as readonly string[]).includes(values.cc)) throw new Error(`netbench: --cc must be one of ${WORKLOAD_CCS.join(', ')}, got "${values.cc}"`);
  const started = performance.now();
  const progress = (line: string): void => { process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0)}s] ${line}\n`); };
  const cc = values.cc as (typeof WORKLOAD_CCS)[number];
  const out = values.out ?? `./bench-out/netbench-${name}-${kind}-${values.cc}/`;
  if (kind === 'wal') {
    const counts = Object.fromEntries((['pgbench-seconds', 'scale', 'clients', 'rate'] as const).map((k) => {
      const n = Number(values[k]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`netbench: --${k} must be a positive integer, got "${values[k]}"`);
      return [k, n];
    }));
    const wal = await runWalWorkload({
      name, profile, cc, backlogBytes: parseSize(values.backlog), pgbenchSeconds: counts['pgbench-seconds'],
      scale: counts.scale, clients: counts.clients, rate: counts.rate, out, progress,
    });
    process.stdout.write('\n' + walMarkdown(`${wal.name}, ${wal.cc}`, wal.profile, wal.rows) + '\n');
    process.stdout.write(`wrote ${wal.files.markdown}, ${wal.files.json}, ${wal.files.svg}\n`);
    return wal.rows.every((r) => r.dataMatches) ? 0 : 1;
  }
  const result = await runObjectsWorkload({
    name, profile, cc, sizeBytes: parseSize(values.size),
    largestBytes: values.largest !== undefined ? parseSize(values.largest) : undefined,
    out, keep: values.keep, progress,
  });
  process.stdout.write('\n' + objectsMarkdown(`${result.name}, ${result.cc}`, result.profile, result.rows) + '\n');
  process.stdout.write(`generated tree: ${result.tree.files} files, ${result.tree.bytes} bytes; changes: ${result.mutation.changed} changed, ${result.mutation.added} added, ${result.mutation.deleted} deleted\n`);
  process.stdout.write(`wrote ${result.files.markdown}, ${result.files.json}, ${result.files.svg}\n`);
  return result.rows.every((r) => r.identical) ? 0 : 1;
}

/**
 * Live mode: a bounded DWCP link run to a peer's link-runner sink (the peer
 * runs `node netbench/link-runner.ts sink --port P --pki DIR` with the same
 * dev PKI). A peer agent's own carrier port needs a stream to accept data,
 * which this minimal mode does not set up.
 */
async function live(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { peer: { type: 'string' }, pki: { type: 'string' }, duration: { type: 'string', default: '20' } } });
  if (!values.peer || !values.pki) {
    process.stderr.write(USAGE);
    return 2;
  }
  const [host, port] = [values.peer.slice(0, values.peer.lastIndexOf(':')), values.peer.slice(values.peer.lastIndexOf(':') + 1)];
  const runner = new URL('./link-runner.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, [runner, 'source', '--host', host, '--port', port, '--pki', values.pki, '--seconds', values.duration, '--adaptive'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return code ?? 1;
}
