// Output of the netbench workloads: the markdown tables (each tool's
// numbers, then DWCP against each baseline as ratios) and an SVG bar chart,
// written without any charting dependency.

import type { LinkProfile } from './link-profile.ts';
import type { PhaseRow } from './objects-workload.ts';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** Bytes as MiB with one decimal. */
const mib = (b: number): string => (b / MiB).toFixed(1);
/** a / b as "0.42x", or "n/a" when b is zero. */
const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
/** CPU seconds per GiB of tree. */
const perGiB = (seconds: number, bytes: number): number => (bytes > 0 ? seconds / (bytes / GiB) : 0);

/** Heading line naming the link. */
export function profileHeading(title: string, p: LinkProfile): string {
  return `### ${title}: ${2 * p.delayMs} ms RTT, ${(p.loss * 100).toFixed(2)} % loss, ${p.rateMbit} Mbit/s\n\n`;
}

/** The objects workload's tables: per tool and phase, then DWCP / baseline ratios. */
export function objectsMarkdown(title: string, p: LinkProfile, rows: PhaseRow[]): string {
  let md = profileHeading(`objects workload, ${title}`, p);
  md += '| phase | tool | time to identical s | MB/s (tree) | wire MiB | wire / tree | CPU s/GiB src | CPU s/GiB dst | peak RSS src MiB | peak RSS dst MiB | identical |\n';
  md += '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n';
  for (const r of rows) {
    if (r.notes.some((n) => n.startsWith('failed:'))) {
      md += `| ${r.phase} | ${r.tool} | ${r.notes[0].replace(/\|/g, '/').replace(/\n/g, ' ')} | | | | | | | | NO |\n`;
      continue;
    }
    md += `| ${r.phase} | ${r.tool} | ${r.seconds.toFixed(1)} | ${r.seconds > 0 ? (r.treeBytes / r.seconds / 1e6).toFixed(1) : ''} | ${mib(r.wireBytes)} | ${r.treeBytes > 0 ? (r.wireBytes / r.treeBytes).toFixed(3) : ''} | ${perGiB(r.cpuSecondsSource, r.treeBytes).toFixed(2)} | ${perGiB(r.cpuSecondsDest, r.treeBytes).toFixed(2)} | ${mib(r.peakRssSourceBytes)} | ${mib(r.peakRssDestBytes)} | ${r.identical ? 'yes' : 'NO'} |\n`;
  }
  md += '\nDWCP / baseline (below 1x: DWCP took less):\n\n';
  md += '| phase | baseline | time | wire bytes | CPU src | CPU dst | peak RSS src | peak RSS dst |\n|---|---|---:|---:|---:|---:|---:|---:|\n';
  for (const phase of ['initial', 'incremental'] as const) {
    const dwcp = rows.find((r) => r.tool === 'dwcp' && r.phase === phase);
    if (!dwcp) continue;
    for (const base of rows.filter((r) => r.tool !== 'dwcp' && r.phase === phase)) {
      md += `| ${phase} | ${base.tool} | ${ratio(dwcp.seconds, base.seconds)} | ${ratio(dwcp.wireBytes, base.wireBytes)} | ${ratio(dwcp.cpuSecondsSource, base.cpuSecondsSource)} | ${ratio(dwcp.cpuSecondsDest, base.cpuSecondsDest)} | ${ratio(dwcp.peakRssSourceBytes, base.peakRssSourceBytes)} | ${ratio(dwcp.peakRssDestBytes, base.peakRssDestBytes)} |\n`;
    }
  }
  const notes = rows.flatMap((r) => r.notes.filter((n) => !n.startsWith('failed:')).map((n) => `- ${r.tool} ${r.phase}: ${n}`));
  if (notes.length > 0) md += `\nNotes:\n${notes.join('\n')}\n`;
  return md;
}

/** Chart geometry, px. */
const W = 720;
const BAR_H = 16;
const PAD = 48;
const LABEL_W = 190;
const COLORS: Record<string, string> = { dwcp: '#d62728' };
const BASE_COLOR = '#1f77b4';

/** SVG: two panels of horizontal bars, time to identical and bytes on the wire, one bar per tool and phase. */
export function objectsSvg(title: string, rows: PhaseRow[]): string {
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const panels = [
    { name: 'time to identical, s', value: (r: PhaseRow) => r.seconds, fmt: (v: number) => v.toFixed(1) },
    { name: 'bytes on the wire, MiB', value: (r: PhaseRow) => r.wireBytes, fmt: (v: number) => mib(v) },
  ];
  const panelH = PAD / 2 + rows.length * (BAR_H + 4);
  const H = PAD + panels.length * (panelH + PAD / 2);
  let y = PAD;
  let body = '';
  for (const panel of panels) {
    body += `<text x="${PAD}" y="${y}" font-size="12">${esc(panel.name)}</text>\n`;
    y += 8;
    // Each phase scales on its own: incremental numbers are orders of magnitude below initial ones.
    for (const r of rows) {
      const max = Math.max(1e-9, ...rows.filter((x) => x.phase === r.phase).map(panel.value));
      const w = ((W - LABEL_W - 2 * PAD) * panel.value(r)) / max;
      body += `<text x="${PAD}" y="${y + BAR_H - 4}">${esc(`${r.phase}: ${r.tool}`)}</text>`;
      body += `<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${COLORS[r.tool] ?? BASE_COLOR}"/>`;
      body += `<text x="${(LABEL_W + w + 4).toFixed(1)}" y="${y + BAR_H - 4}">${panel.fmt(panel.value(r))}</text>\n`;
      y += BAR_H + 4;
    }
    y += PAD / 2;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${PAD}" y="20" font-size="13">${esc(title)}</text>
${body}</svg>
`;
}
