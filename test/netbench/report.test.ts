// netbench's table: a row per carrier kind, each DWCP row also as a ratio to
// the TLS carrier's row, and the auto row saying which kind it ended on and
// why. Figures are made up; only the arithmetic and the labels are checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { markdownTable, type BenchRow } from '../../netbench/report.ts';
import { METRO } from '../../netbench/link-profile.ts';

const MB = 1e6;

function row(label: string, transport: string | undefined, goodputBytesPerS: number, over: Partial<BenchRow> = {}): BenchRow {
  return { label, kind: transport ? 'dwcp' : 'tcp', congestionControl: 'bbr', carriers: 4, seconds: 30, goodputBytesPerS, percentOfLink: goodputBytesPerS / 1.25e6, meanRttMs: 10, retransmits: 0, cpuSecondsPerGB: 5, transport, ...over };
}

test('a row per carrier kind, with its ratio to the TLS carrier, and what auto chose', () => {
  const rows = [
    row('tcp 1 x bbr', undefined, 100 * MB),
    row('dwcp amst adaptive', 'tls', 100 * MB),
    row('dwcp amst adaptive, ws', 'ws', 90 * MB),
    row('dwcp amst adaptive, quic', 'quic', 50 * MB),
    row('dwcp amst adaptive, auto', 'auto', 95 * MB, { autoChoice: { kind: 'tls', reason: 'kept', measurements: [] } }),
  ];
  const lines = markdownTable('metro', METRO, rows).split('\n');
  const cells = (label: string): string[] => lines.find((l) => l.startsWith(`| ${label} |`))!.split('|').map((c) => c.trim());
  assert.ok(lines.some((l) => l.includes('| carrier |') && l.includes('| x TLS carrier |')));
  assert.deepEqual(cells('dwcp amst adaptive, ws').slice(2, 6), ['ws', '720.0', '72.0', '0.90']);
  assert.deepEqual(cells('dwcp amst adaptive, quic').slice(2, 6), ['quic', '400.0', '40.0', '0.50']);
  assert.deepEqual(cells('dwcp amst adaptive, auto').slice(2, 6), ['auto: tls (kept)', '760.0', '76.0', '0.95']);
  assert.equal(cells('tcp 1 x bbr')[5], '', 'plain TCP rows get no carrier ratio');
});
