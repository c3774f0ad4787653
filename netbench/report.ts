// netbench output: the markdown table and the SVG chart (goodput and
// carrier count over time), written without any charting dependency.

import type { LinkProfile } from './link-profile.ts';

/** Carrier kinds of DWCP rows (link-runner --transport), and auto: the link measures and chooses. */
export const BENCH_TRANSPORTS = ['tls', 'ws', 'quic', 'auto'] as const;

/** One measured row. */
export interface BenchRow {
  label: string;
  kind: 'tcp' | 'iperf3' | 'dwcp';
  congestionControl: string;
  /** Flows, or the carrier count the controller chose last. */
  carriers: number;
  seconds: number;
  /** Acknowledged payload bytes per second over the whole row. */
  goodputBytesPerS: number;
  percentOfLink: number;
  meanRttMs: number;
  /** Retransmitted segments. */
  retransmits: number;
  /** CPU of both endpoints (not the emulator) per GB moved. */
  cpuSecondsPerGB: number;
  /** DWCP: mean goodput over the second half (after ramp-up). */
  steadyGoodputBytesPerS?: number;
  /** DWCP: peak RSS of the larger endpoint. */
  rssMaxBytes?: number;
  /** DWCP: carrier kind of the row (tls, ws, quic, or auto). */
  transport?: string;
  /** DWCP auto: the kind the link ended on, why, and what each kind's probe measured. */
  autoChoice?: { kind: string; reason: string; measurements: unknown[] };
  /** Set when the row failed (the other fields are then zero). */
  error?: string;
}

/** One second of an adaptive run. */
export interface TickPoint {
  atS: number;
  goodputBytesPerS: number;
  carriers: number;
  rttMs: number;
}

const mbit = (bytesPerS: number): string => ((bytesPerS * 8) / 1e6).toFixed(1);

/** The markdown table of one run. */
export function markdownTable(name: string, p: LinkProfile, rows: BenchRow[]): string {
  const head = `### ${name}: ${2 * p.delayMs} ms RTT, ${(p.loss * 100).toFixed(2)} % loss, ${p.rateMbit} Mbit/s\n\n`;
  const cols = '| row | carrier | goodput Mbit/s | % of link | x TLS carrier | steady Mbit/s | mean RTT ms | retransmits | CPU s/GB | carriers |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n';
  // DWCP rows also as a ratio to the TLS carrier's row (the first DWCP row on TLS).
  const tls = rows.find((r) => r.kind === 'dwcp' && r.transport === 'tls' && !r.error && r.goodputBytesPerS > 0);
  const carrier = (r: BenchRow): string => r.transport === 'auto' && r.autoChoice ? `auto: ${r.autoChoice.kind} (${r.autoChoice.reason})` : (r.transport ?? '');
  const ratio = (r: BenchRow): string => r.kind === 'dwcp' && tls ? (r.goodputBytesPerS / tls.goodputBytesPerS).toFixed(2) : '';
  const lines = rows.map((r) => r.error ? `| ${r.label} | ${r.transport ?? ''} | failed: ${r.error.replace(/\|/g, '/')} | | | | | | | |` : `| ${r.label} | ${carrier(r)} | ${mbit(r.goodputBytesPerS)} | ${r.percentOfLink.toFixed(1)} | ${ratio(r)} | ${r.steadyGoodputBytesPerS !== undefined ? mbit(r.steadyGoodputBytesPerS) : ''} | ${r.meanRttMs.toFixed(1)} | ${r.retransmits} | ${r.cpuSecondsPerGB.toFixed(1)} | ${r.carriers} |`);
  return head + cols + lines.join('\n') + '\n';
}

/** Chart geometry, px. */
const W = 720;
const H = 320;
const PAD = 48;

/** SVG line chart: goodput (left axis, Mbit/s) and carriers (right axis) over time. */
export function svgChart(title: string, ticks: TickPoint[], linkBytesPerS: number): string {
  const tMax = Math.max(1, ...ticks.map((t) => t.atS));
  const gMax = Math.max(linkBytesPerS, ...ticks.map((t) => t.goodputBytesPerS), 1);
  const cMax = Math.max(1, ...ticks.map((t) => t.carriers));
  const x = (s: number): number => PAD + ((W - 2 * PAD) * s) / tMax;
  const yG = (b: number): number => H - PAD - ((H - 2 * PAD) * b) / gMax;
  const yC = (c: number): number => H - PAD - ((H - 2 * PAD) * c) / cMax;
  const path = (f: (t: TickPoint) => number): string => ticks.map((t, i) => `${i ? 'L' : 'M'}${x(t.atS).toFixed(1)},${f(t).toFixed(1)}`).join(' ');
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${PAD}" y="18" font-size="13">${esc(title)}</text>
<line x1="${PAD}" y1="${H - PAD}" x2="${W - PAD}" y2="${H - PAD}" stroke="#333"/>
<line x1="${PAD}" y1="${PAD}" x2="${PAD}" y2="${H - PAD}" stroke="#333"/>
<line x1="${W - PAD}" y1="${PAD}" x2="${W - PAD}" y2="${H - PAD}" stroke="#333"/>
<line x1="${PAD}" y1="${yG(linkBytesPerS)}" x2="${W - PAD}" y2="${yG(linkBytesPerS)}" stroke="#999" stroke-dasharray="4 3"/>
<text x="${PAD + 4}" y="${yG(linkBytesPerS) - 4}" fill="#666">link ${mbit(linkBytesPerS)} Mbit/s</text>
<text x="4" y="${PAD - 8}" fill="#1f77b4">Mbit/s (max ${mbit(gMax)})</text>
<text x="${W - PAD - 60}" y="${PAD - 8}" fill="#d62728">carriers (max ${cMax})</text>
<text x="${W / 2 - 20}" y="${H - 12}">time, s (${tMax.toFixed(0)})</text>
<path d="${path((t) => yG(t.goodputBytesPerS))}" fill="none" stroke="#1f77b4" stroke-width="2"/>
<path d="${path((t) => yC(t.carriers))}" fill="none" stroke="#d62728" stroke-width="2"/>
</svg>
`;
}
