// The WAL workload end to end on the emulated WAN (short version of
// `dwcp netbench lab --workload wal`): a primary in one namespace, a native
// standby and a DWCP-fed standby in the other. Asserts correctness only
// (both standbys hold the primary's data after the backlog and pgbench,
// both paths counted on the link), never speed. NEEDS ROOT, ip netns,
// /dev/net/tun, iptables, PostgreSQL 15 and the dwcp-test user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { METRO } from '../../netbench/lab.ts';
import { runWalWorkload } from '../../netbench/wal-workload.ts';

/** The host's default congestion control, which a new namespace may always use. */
const HOST_CC = readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim() === 'cubic' ? 'cubic' : 'bbr';
const BACKLOG_BYTES = 16e6;

test('wal workload: the native and the DWCP-fed standby replay the backlog and pgbench to the primary\'s data', async () => {
  const out = await mkdtemp(join(tmpdir(), 'dwcp-wal-workload-'));
  try {
    const result = await runWalWorkload({
      name: 'metro', profile: METRO, cc: HOST_CC, backlogBytes: BACKLOG_BYTES, pgbenchSeconds: 5, scale: 1, clients: 2, rate: 50, out, progress: () => {},
    });
    assert.deepEqual(result.rows.map((r) => r.path), ['native', 'dwcp']);
    for (const r of result.rows) {
      assert.equal(r.dataMatches, true, `${r.path}: ${r.notes.join('; ')}`);
      assert.ok(r.backlogWalBytes >= BACKLOG_BYTES, `${r.path}: backlog ${r.backlogWalBytes}`);
      assert.ok(r.steadyWalBytes > 0, `${r.path}: pgbench wrote WAL`);
      // Each path's counter saw its own transfer of the backlog (the link counters are per path, not shared).
      assert.ok(r.backlogWireBytes > 0 && r.steadyWireBytes > 0, `${r.path}: wire ${r.backlogWireBytes} / ${r.steadyWireBytes}`);
    }
    assert.ok(result.series.length > 0, 'lag samples');
    const json = JSON.parse(await readFile(result.files.json, 'utf8')) as { rows: unknown[] };
    assert.equal(json.rows.length, 2);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
