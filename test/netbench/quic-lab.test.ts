// QUIC carriers over the intercontinental emulated link (netbench/lab.ts:
// 100 ms RTT, 1 % loss, 1 Gbit/s) between two network namespaces: the
// bytes arrive identical and in order on every carrier. Identity of the
// data only; goodput is netbench's to report, not a test's to assert.
// NEEDS ROOT, ip netns, /dev/net/tun and the native build (the emulator):
// without them createLab throws and this test fails saying what is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, INTERCONTINENTAL, type Lab } from '../../netbench/lab.ts';
import { createDevPki } from '../../src/cli/dev-pki.ts';
import { LAB_AGENTS } from '../helpers/quic-fixture.ts';
import { jsonLines, until } from '../helpers/json-lines.ts';

const RUNNER = new URL('../helpers/quic-lab-runner.ts', import.meta.url).pathname;
const PORT = 7960;
const MiB = 1024 * 1024;
/** Bytes carried. */
const BYTES = 64 * MiB;
/**
 * QUIC carriers the bytes are split over (each its own in-order sequence):
 * one carrier took ~40 s here (quiche's cubic, ~13 Mbit/s on 1 % loss),
 * eight ~6 s, and the test is about identity, not speed.
 */
const CARRIERS = 8;
/** Time the whole transfer may take, ms. */
const TRANSFER_TIMEOUT_MS = 240_000;

test('intercontinental: 64 MiB over QUIC carriers arrive identical and in order', { timeout: TRANSFER_TIMEOUT_MS + 60_000 }, async () => {
  const pki = await mkdtemp(join(tmpdir(), 'dwcp-quic-lab-'));
  let lab: Lab | undefined;
  try {
    await createDevPki(pki, LAB_AGENTS);
    lab = await createLab(INTERCONTINENTAL);
    const args = ['--port', String(PORT), '--pki', pki, '--bytes', String(BYTES), '--carriers', String(CARRIERS)];
    const sink = lab.exec(lab.nsB, process.execPath, [RUNNER, 'sink', '--host', lab.addrB, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const sinkLines = jsonLines(sink.stdout!);
    await until(() => sinkLines.some((l) => l.event === 'listening'), 20_000, 'sink listening');
    const source = lab.exec(lab.nsA, process.execPath, [RUNNER, 'source', '--host', lab.addrB, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const sourceLines = jsonLines(source.stdout!);
    await until(() => sinkLines.some((l) => l.event === 'summary') || sinkLines.some((l) => l.event === 'closed'), TRANSFER_TIMEOUT_MS, 'sink summary');
    const sent = sourceLines.find((l) => l.event === 'summary');
    const received = sinkLines.find((l) => l.event === 'summary');
    source.kill('SIGTERM');
    assert.deepEqual(sinkLines.filter((l) => l.event === 'order' || l.event === 'closed' || l.event === 'refused'), [], 'no frame out of order, no carrier lost');
    assert.ok(sent, 'source printed no summary');
    assert.ok(received, 'sink printed no summary');
    assert.equal(received.bytes, BYTES);
    assert.deepEqual(received.digests, sent.digests, 'payload digests per carrier differ');
  } finally {
    await lab?.close();
    await rm(pki, { recursive: true, force: true });
  }
});
