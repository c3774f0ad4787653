// Output of the WAL workload: native streaming and DWCP side by side (and
// DWCP / native as ratios), and an SVG line chart of the replay lag.

import type { LinkProfile } from './link-profile.ts';
import { profileHeading } from './workload-report.ts';
import type { WalPathRow } from './wal-workload.ts';

const MiB = 2 ** 20;
const mib = (b: number): string => (b / MiB).toFixed(1);
const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');

/** The WAL workload's tables. */
export function walMarkdown(title: string, p: LinkProfile, rows: WalPathRow[]): string {
  let md = profileHeading(`wal workload, ${title}`, p);
  md += '| path | backlog WAL MiB | catch-up s | catch-up MB/s | backlog wire MiB | pgbench WAL MiB | pgbench wire MiB | wire / WAL | replay lag p50 / p95 / max ms | behind p95 KiB | standby data = primary |\n';
  md += '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n';
  for (const r of rows) {
    md += `| ${r.path} | ${mib(r.backlogWalBytes)} | ${r.catchUpSeconds.toFixed(1)} | ${(r.backlogWalBytes / r.catchUpSeconds / 1e6).toFixed(1)} | ${mib(r.backlogWireBytes)} | ${mib(r.steadyWalBytes)} | ${mib(r.steadyWireBytes)} | ${((r.backlogWireBytes + r.steadyWireBytes) / Math.max(1, r.backlogWalBytes + r.steadyWalBytes)).toFixed(3)} | ${r.lagMs.p50.toFixed(0)} / ${r.lagMs.p95.toFixed(0)} / ${r.lagMs.max.toFixed(0)} | ${(r.lagBytes.p95 / 1024).toFixed(0)} | ${r.dataMatches ? 'yes' : 'NO'} |\n`;
  }
  const native = rows.find((r) => r.path === 'native');
  const dwcp = rows.find((r) => r.path === 'dwcp');
  if (native && dwcp) {
    md += '\nDWCP / native (below 1x: DWCP took less):\n\n| catch-up time | backlog wire bytes | pgbench wire bytes | lag p50 | lag p95 | lag max |\n|---:|---:|---:|---:|---:|---:|\n';
    md += `| ${ratio(dwcp.catchUpSeconds, native.catchUpSeconds)} | ${ratio(dwcp.backlogWireBytes, native.backlogWireBytes)} | ${ratio(dwcp.steadyWireBytes, native.steadyWireBytes)} | ${ratio(dwcp.lagMs.p50, native.lagMs.p50)} | ${ratio(dwcp.lagMs.p95, native.lagMs.p95)} | ${ratio(dwcp.lagMs.max, native.lagMs.max)} |\n`;
  }
  const notes = rows.flatMap((r) => r.notes.map((n) => `- ${r.path}: ${n}`));
  if (notes.length > 0) md += `\nNotes:\n${notes.join('\n')}\n`;
  return md;
}

/** Chart geometry, px. */
const W = 720;
const H = 320;
const PAD = 48;

/** SVG: replay lag (ms) over time, one line per path. */
export function walSvg(title: string, series: Array<{ atS: number; native: number; dwcp: number }>): string {
  const tMax = Math.max(1, ...series.map((s) => s.atS));
  const lMax = Math.max(1, ...series.flatMap((s) => [s.native, s.dwcp]));
  const x = (s: number): number => PAD + ((W - 2 * PAD) * s) / tMax;
  const y = (ms: number): number => H - PAD - ((H - 2 * PAD) * ms) / lMax;
  const path = (key: 'native' | 'dwcp'): string => series.map((s, i) => `${i ? 'L' : 'M'}${x(s.atS).toFixed(1)},${y(s[key]).toFixed(1)}`).join(' ');
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${PAD}" y="18" font-size="13">${esc(title)}</text>
<line x1="${PAD}" y1="${H - PAD}" x2="${W - PAD}" y2="${H - PAD}" stroke="#333"/>
<line x1="${PAD}" y1="${PAD}" x2="${PAD}" y2="${H - PAD}" stroke="#333"/>
<text x="4" y="${PAD - 8}">replay lag, ms (max ${lMax.toFixed(0)})</text>
<text x="${W / 2 - 20}" y="${H - 12}">time, s (${tMax.toFixed(0)})</text>
<text x="${W - PAD - 120}" y="${PAD - 8}" fill="#1f77b4">native</text>
<text x="${W - PAD - 60}" y="${PAD - 8}" fill="#d62728">dwcp</text>
<path d="${path('native')}" fill="none" stroke="#1f77b4" stroke-width="2"/>
<path d="${path('dwcp')}" fill="none" stroke="#d62728" stroke-width="2"/>
</svg>
`;
}
