// netbench lab: over one emulated WAN (lab.ts) and in one run, measure one
// TCP flow (cubic, bbr), fixed N flows (a sweep), DWCP with the AMST
// controller (free congestion control, and cubic only) on each carrier kind
// (TLS, WebSocket, QUIC) and with amst.transport auto, and iperf3 as an
// outside reference; write a markdown table, JSON and an SVG chart.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { createLab, type Lab, type LinkProfile } from './lab.ts';
import { RUNNER_CERTS } from './runner-certs.ts';
import { createDevPki } from '../src/cli/dev-pki.ts';
import { BENCH_TRANSPORTS, markdownTable, svgChart, type BenchRow, type TickPoint } from './report.ts';

const RUNNER = new URL('./link-runner.ts', import.meta.url).pathname;
const FLOWS = new URL('./tcp-flows.ts', import.meta.url).pathname;
const IPERF3 = '/usr/bin/iperf3';
/** Ports inside the lab namespaces. */
const PORT = 7900;
const LISTEN_TIMEOUT_MS = 10_000;
/** Extra time allowed for a row beyond its duration (connects, summaries), ms. */
const ROW_GRACE_MS = 60_000;

/** What to run. */
export interface NetbenchOptions {
  name: string;
  profile: LinkProfile;
  /** Seconds per row. */
  seconds: number;
  /** Seconds for the adaptive rows (ramp-up is longer on long paths). */
  adaptiveSeconds: number;
  /** Flow counts of the fixed-N rows, per congestion control. */
  sweep: { cc: string; flows: number[] }[];
  maxStreams: number;
  /** Carrier kinds of the DWCP rows (auto: the link measures and chooses); default all of BENCH_TRANSPORTS. */
  transports?: Array<(typeof BENCH_TRANSPORTS)[number]>;
  out: string;
  progress: (line: string) => void;
}

/** Everything one run produced. */
export interface NetbenchResult {
  name: string;
  profile: LinkProfile;
  rows: BenchRow[];
  /** Per-second series of the adaptive runs, by row label. */
  series: Record<string, TickPoint[]>;
  files: { markdown: string; json: string; svg: string[] };
}

/** Run every row over one lab and write the reports. */
export async function runNetbench(o: NetbenchOptions): Promise<NetbenchResult> {
  await mkdir(o.out, { recursive: true });
  const pki = await mkdtemp(join(tmpdir(), 'dwcp-netbench-pki-'));
  await createDevPki(pki, RUNNER_CERTS);
  const lab = await createLab(o.profile);
  const rows: BenchRow[] = [];
  const series: Record<string, TickPoint[]> = {};
  const linkBytesPerS = (o.profile.rateMbit * 1e6) / 8;
  const add = (row: BenchRow): void => {
    row.percentOfLink = linkBytesPerS > 0 ? (100 * row.goodputBytesPerS) / linkBytesPerS : 0;
    rows.push(row);
    o.progress(`  ${row.label}: ${(row.goodputBytesPerS * 8 / 1e6).toFixed(1)} Mbit/s, rtt ${row.meanRttMs.toFixed(1)} ms, carriers ${row.carriers}`);
  };
  try {
    // Outside reference first, then the plain TCP rows, then DWCP.
    // A row that fails is reported as failed; the others still run.
    const attempt = async (label: string, run: () => Promise<BenchRow>): Promise<void> => {
      try {
        add(await run());
      } catch (err) {
        o.progress(`  ${label}: FAILED: ${(err as Error).message}`);
        rows.push({ label, kind: 'tcp', congestionControl: '', carriers: 0, seconds: 0, goodputBytesPerS: 0, percentOfLink: 0, meanRttMs: 0, retransmits: 0, cpuSecondsPerGB: 0, error: (err as Error).message });
      }
    };
    if (existsSync(IPERF3)) {
      for (const cc of ['cubic', 'bbr']) await attempt(`iperf3 1 x ${cc}`, () => iperf3Row(lab, cc, o));
    } else o.progress(`  iperf3 not installed (${IPERF3}): reference rows skipped`);
    for (const { cc, flows } of o.sweep) {
      for (const n of flows) await attempt(`tcp ${n} x ${cc}`, () => tcpRow(lab, cc, n, o));
    }
    // DWCP: the TLS carrier (free congestion control, then cubic only), then each other kind and auto.
    const kinds = o.transports ?? [...BENCH_TRANSPORTS];
    const dwcpRows: Array<[string, string, (typeof BENCH_TRANSPORTS)[number]]> = [];
    if (kinds.includes('tls')) dwcpRows.push(['dwcp amst adaptive', 'auto', 'tls'], ['dwcp amst adaptive, cubic only', 'cubic', 'tls']);
    for (const kind of kinds) if (kind !== 'tls') dwcpRows.push([`dwcp amst adaptive, ${kind}`, 'auto', kind]);
    for (const [label, cc, transport] of dwcpRows) {
      await attempt(label, async () => {
        const { row, ticks } = await dwcpRow(lab, label, cc, transport, pki, o);
        series[label] = ticks;
        return row;
      });
    }
  } finally {
    await lab.close().catch((err: Error) => o.progress(`lab close: ${err.message}`));
    await rm(pki, { recursive: true, force: true });
  }

  // Reports: markdown, JSON, one SVG per adaptive run.
  const md = markdownTable(o.name, o.profile, rows);
  const files = { markdown: join(o.out, 'table.md'), json: join(o.out, 'results.json'), svg: [] as string[] };
  await writeFile(files.markdown, md);
  await writeFile(files.json, JSON.stringify({ name: o.name, profile: o.profile, rows, series }, null, 2) + '\n');
  for (const [label, ticks] of Object.entries(series)) {
    const file = join(o.out, `${label.replace(/[^a-z0-9]+/gi, '-').replace(/-+$/, '')}.svg`);
    await writeFile(file, svgChart(`${o.name}: ${label}`, ticks, linkBytesPerS));
    files.svg.push(file);
  }
  return { name: o.name, profile: o.profile, rows, series, files };
}

/** JSON lines of a child's stdout, and its exit. */
function jsonLines(child: ChildProcess): { lines: Array<Record<string, unknown>>; next(event: string, timeoutMs: number): Promise<Record<string, unknown>>; exited: Promise<number | null>; stderr: () => string } {
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ event: string; resolve: (l: Record<string, unknown>) => void }> = [];
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    lines.push(line);
    for (const w of waiters.splice(0)) {
      if (w.event === line.event) w.resolve(line);
      else waiters.push(w);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    lines,
    exited,
    stderr: () => stderr,
    next: (event, timeoutMs) => new Promise((resolve, reject) => {
      const seen = lines.find((l) => l.event === event);
      if (seen) return resolve(seen);
      const timer = setTimeout(() => reject(new Error(`no "${event}" within ${timeoutMs} ms: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)), timeoutMs);
      timer.unref();
      void exited.then(() => setTimeout(() => reject(new Error(`exited before "${event}": ${stderr.trim().split('\n').slice(-3).join(' | ')}`)), 200).unref());
      waiters.push({ event, resolve: (l) => { clearTimeout(timer); resolve(l); } });
    }),
  };
}

/**
 * Kill what is still running of a row's processes and wait for them: a row
 * that failed (a summary that never came) must not leave its sink holding
 * the port the next row listens on.
 */
async function endChildren(...children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((child) => {
    if (child.exitCode !== null || child.signalCode !== null) return undefined;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    return gone;
  }));
}

/** Stop a sink and read its summary. */
async function stopSink(child: ChildProcess, out: ReturnType<typeof jsonLines>): Promise<Record<string, unknown>> {
  child.kill('SIGTERM');
  return out.next('summary', 10_000);
}

/** N plain TCP flows with one congestion control. */
async function tcpRow(lab: Lab, cc: string, flows: number, o: NetbenchOptions): Promise<BenchRow> {
  o.progress(`tcp ${flows} x ${cc} (${o.seconds} s)`);
  const sinkChild = lab.exec(lab.nsB, process.execPath, [FLOWS, 'sink', String(PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sinkOut = jsonLines(sinkChild);
  await sinkOut.next('listening', LISTEN_TIMEOUT_MS);
  const src = lab.exec(lab.nsA, process.execPath, [FLOWS, 'source', lab.addrB, String(PORT), String(o.seconds), String(flows), cc], { stdio: ['ignore', 'pipe', 'pipe'] });
  const srcOut = jsonLines(src);
  let summary: Record<string, unknown>;
  let sinkSummary: Record<string, unknown>;
  try {
    summary = await srcOut.next('summary', o.seconds * 1000 + ROW_GRACE_MS);
    sinkSummary = await stopSink(sinkChild, sinkOut);
  } finally {
    await endChildren(src, sinkChild);
  }
  const bytes = summary.ackedBytes as number;
  return {
    label: `tcp ${flows} x ${cc}`, kind: 'tcp', congestionControl: cc, carriers: flows, seconds: summary.seconds as number,
    goodputBytesPerS: bytes / (summary.seconds as number), percentOfLink: 0, meanRttMs: summary.meanRttMs as number,
    retransmits: summary.retransSegments as number,
    cpuSecondsPerGB: perGB((summary.cpuSeconds as number) + (sinkSummary.cpuSeconds as number), bytes),
  };
}

/** iperf3, one flow, as an outside reference. */
async function iperf3Row(lab: Lab, cc: string, o: NetbenchOptions): Promise<BenchRow> {
  o.progress(`iperf3 1 x ${cc} (${o.seconds} s)`);
  const server = lab.exec(lab.nsB, IPERF3, ['-s', '-1', '-p', String(PORT + 1)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const client = lab.exec(lab.nsA, IPERF3, ['-c', lab.addrB, '-p', String(PORT + 1), '-t', String(o.seconds), '-C', cc, '-J'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  client.stdout!.on('data', (c: Buffer) => { text += c.toString(); });
  await new Promise((r) => client.once('exit', r));
  server.kill('SIGTERM');
  const j = JSON.parse(text) as { error?: string; end: { sum_received: { bytes: number; seconds: number }; sum_sent: { retransmits: number }; streams: Array<{ sender: { mean_rtt: number } }>; cpu_utilization_percent: { host_total: number; remote_total: number } } };
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const e = j.end;
  const cpu = ((e.cpu_utilization_percent.host_total + e.cpu_utilization_percent.remote_total) / 100) * e.sum_received.seconds;
  return {
    label: `iperf3 1 x ${cc}`, kind: 'iperf3', congestionControl: cc, carriers: 1, seconds: e.sum_received.seconds,
    goodputBytesPerS: e.sum_received.bytes / e.sum_received.seconds, percentOfLink: 0, meanRttMs: (e.streams[0]?.sender.mean_rtt ?? 0) / 1000,
    retransmits: e.sum_sent.retransmits, cpuSecondsPerGB: perGB(cpu, e.sum_received.bytes),
  };
}

/** DWCP link with the AMST controller. */
async function dwcpRow(lab: Lab, label: string, cc: string, transport: string, pki: string, o: NetbenchOptions): Promise<{ row: BenchRow; ticks: TickPoint[] }> {
  o.progress(`${label} (${o.adaptiveSeconds} s)`);
  // The sink accepts every kind (TLS and QUIC on PORT + 2, WebSocket on the port after): auto finds them all.
  const sinkChild = lab.exec(lab.nsB, process.execPath, [RUNNER, 'sink', '--port', String(PORT + 2), '--pki', pki], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sinkOut = jsonLines(sinkChild);
  await sinkOut.next('listening', LISTEN_TIMEOUT_MS);
  const src = lab.exec(lab.nsA, process.execPath, [RUNNER, 'source', '--host', lab.addrB, '--port', String(PORT + 2), '--pki', pki,
    '--seconds', String(o.adaptiveSeconds), '--adaptive', '--cc', cc, '--max-streams', String(o.maxStreams), '--transport', transport], { stdio: ['ignore', 'pipe', 'pipe'] });
  const srcOut = jsonLines(src);
  // Progress: one line per tick.
  let shown = 0;
  const timer = setInterval(() => {
    for (const t of srcOut.lines.slice(shown).filter((l) => l.event === 'tick')) {
      const mib = (key: string): string => ((t[key] as number) / 1048576).toFixed(0);
      const sent = t.carrierRateBytesPerS === undefined ? '' : ` (carriers sent ${(((t.carrierRateBytesPerS as number) * 8) / 1e6).toFixed(1)}, in flight ${mib('inflightBytes')} MiB, delivered not durable ${mib('deliveredNotDurableBytes')} MiB)`;
      o.progress(`    t=${Math.round((t.atMs as number) / 1000)}s ${(((t.goodputBytesPerS as number) * 8) / 1e6).toFixed(1)} Mbit/s${sent} carriers ${t.carriers}->${t.target} ${t.cc} ${t.reason} rtt ${t.rttMs} ms`);
    }
    shown = srcOut.lines.length;
  }, 1000);
  timer.unref();
  let summary: Record<string, unknown>;
  let sinkSummary: Record<string, unknown>;
  try {
    summary = await srcOut.next('summary', o.adaptiveSeconds * 1000 + ROW_GRACE_MS);
    sinkSummary = await stopSink(sinkChild, sinkOut);
  } finally {
    clearInterval(timer);
    await endChildren(src, sinkChild);
  }
  const ticks = srcOut.lines.filter((l) => l.event === 'tick').map((t) => ({
    atS: (t.atMs as number) / 1000, goodputBytesPerS: t.goodputBytesPerS as number, carriers: t.carriers as number, rttMs: t.rttMs as number,
  }));
  const tickLines = srcOut.lines.filter((l) => l.event === 'tick');
  const rtts = tickLines.map((t) => t.rttMs as number).filter((r) => r > 0);
  const bytes = summary.ackedBytes as number;
  const last = tickLines.at(-1);
  const row: BenchRow = {
    label, kind: 'dwcp', congestionControl: String(last?.cc ?? cc), carriers: Number(last?.target ?? summary.carriers),
    seconds: summary.seconds as number, goodputBytesPerS: summary.goodputBytesPerS as number, percentOfLink: 0,
    meanRttMs: rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 0,
    retransmits: Math.round(tickLines.reduce((a, t) => a + (t.retransBytes as number), 0) / 1448),
    cpuSecondsPerGB: perGB((summary.cpuSeconds as number) + (sinkSummary.cpuSeconds as number), bytes),
    steadyGoodputBytesPerS: steady(tickLines.map((t) => t.goodputBytesPerS as number)),
    rssMaxBytes: Math.max(summary.rssMaxBytes as number, sinkSummary.rssMaxBytes as number),
    transport,
  };
  // auto: the kind it ended on and why (the probe's figures are in the JSON).
  const choice = summary.transportChoice as { kind: string | null; reason: string; measurements: unknown[] } | undefined;
  if (transport === 'auto' && choice) row.autoChoice = { kind: String(summary.transport ?? choice.kind), reason: choice.reason, measurements: choice.measurements };
  return { row, ticks };
}

/** Mean of the last half of a series (after ramp-up). */
function steady(xs: number[]): number {
  const tail = xs.slice(Math.floor(xs.length / 2));
  return tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : 0;
}

function perGB(cpuSeconds: number, bytes: number): number {
  return bytes > 0 ? cpuSeconds / (bytes / 1e9) : 0;
}
