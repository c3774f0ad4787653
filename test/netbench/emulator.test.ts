// The dwcp-wanem link emulator measured through real namespaces, TUN devices
// and sockets. Needs root, `ip netns` and /dev/net/tun: without them
// createLab throws and these tests fail saying what is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLab, type Lab } from '../../netbench/lab.ts';

const UDP_PROBE = fileURLToPath(new URL('../../netbench/udp-probe.ts', import.meta.url));
const TCP_PROBE = fileURLToPath(new URL('../../netbench/tcp-probe.ts', import.meta.url));
const PORT = 5201;
const PROBE_TIMEOUT_MS = 20_000;

/** A probe process in a namespace: its JSON lines, and a promise of its last one. */
interface Probe {
  child: ChildProcess;
  listening: Promise<void>;
  result: Promise<Record<string, unknown>>;
}

/** Run a netbench probe script inside `ns` with the same Node binary. */
function probe(lab: Lab, ns: string, script: string, args: (string | number)[]): Probe {
  const child = lab.exec(ns, process.execPath, [script, ...args.map(String)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const lines: Record<string, unknown>[] = [];
  let onListening: () => void = () => {};
  const listening = new Promise<void>((resolve) => { onListening = resolve; });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const event = JSON.parse(line) as Record<string, unknown>;
    if (event.event === 'listening') onListening();
    else lines.push(event);
  });
  const result = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`probe ${args[0]} timed out: ${stderr}`)), PROBE_TIMEOUT_MS);
    timer.unref();
    child.once('close', (code) => {
      clearTimeout(timer);
      const last = lines.at(-1);
      if (code !== 0 || last === undefined) reject(new Error(`probe ${args[0]} exited ${code}: ${stderr}`));
      else resolve(last);
    });
  });
  result.catch(() => {}); // servers killed by lab.close() are not awaited
  return { child, listening, result };
}

/** Namespaces currently listed by `ip netns list`. */
function listedNamespaces(): string {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
}

/** Median of a non-empty list. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

test('round-trip time is twice the one-way delay', async () => {
  const delayMs = 20;
  const lab = await createLab({ delayMs, loss: 0, rateMbit: 0 });
  try {
    const server = probe(lab, lab.nsB, UDP_PROBE, ['echo', PORT, 10]);
    await server.listening;
    const client = await probe(lab, lab.nsA, UDP_PROBE, ['ping', lab.addrB, PORT, 30, 20]).result;
    const rtts = client.rttMs as number[];
    assert.equal(client.received, 30, 'no loss configured, every ping must come back');

    // Never faster than the emulated path; median within ~2 ms of 2 x delay.
    const expected = 2 * delayMs;
    assert.ok(Math.min(...rtts) >= expected - 0.5, `min rtt ${Math.min(...rtts)} ms < ${expected} ms`);
    assert.ok(Math.abs(median(rtts) - expected) <= 2.5, `median rtt ${median(rtts)} ms, want ${expected} +- 2.5`);
  } finally {
    await lab.close();
  }
});

test('random loss matches the configured probability', async () => {
  const loss = 0.05;
  const count = 1000;
  const lab = await createLab({ delayMs: 2, loss, rateMbit: 0, seed: 42 });
  try {
    const sink = probe(lab, lab.nsB, UDP_PROBE, ['sink', PORT, 3]);
    await sink.listening;
    await probe(lab, lab.nsA, UDP_PROBE, ['blast', lab.addrB, PORT, count]).result;
    const got = await sink.result;

    // Binomial(1000, 0.05): sd ~6.9 packets; allow 4 sd either side.
    const lost = count - (got.unique as number);
    const sd = Math.sqrt(count * loss * (1 - loss));
    assert.ok(Math.abs(lost - count * loss) <= 4 * sd, `lost ${lost} of ${count}, want ${count * loss} +- ${(4 * sd).toFixed(0)}`);

    // The emulator's own counters saw the same drops (IPv6 chatter may add a few).
    const stats = await lab.stats();
    assert.ok(stats.aToB.lostPackets >= lost, `emulator counted ${stats.aToB.lostPackets} lost, sink missed ${lost}`);
    assert.ok(stats.aToB.lostPackets <= lost + 5, `emulator counted ${stats.aToB.lostPackets} lost, sink missed ${lost}`);
  } finally {
    await lab.close();
  }
});

test('tcp goodput follows the rate limit', async () => {
  const rateMbit = 200;
  const lab = await createLab({ delayMs: 5, loss: 0, rateMbit });
  try {
    const sink = probe(lab, lab.nsB, TCP_PROBE, ['sink', PORT]);
    await sink.listening;
    await probe(lab, lab.nsA, TCP_PROBE, ['source', lab.addrB, PORT, 3, 'cubic']).result;
    const got = await sink.result;

    // TCP/IP headers take ~3.5 % of a 1500-byte packet: goodput ~193 Mbit/s.
    const mbit = got.mbit as number;
    assert.ok(Math.abs(mbit - rateMbit) <= rateMbit * 0.15, `goodput ${mbit.toFixed(1)} Mbit/s, want ${rateMbit} +- 15 %`);
    const stats = await lab.stats();
    assert.ok(stats.aToB.forwardedBytes >= (got.bytes as number), 'emulator forwarded fewer bytes than were received');
  } finally {
    await lab.close();
  }
});

test('close removes the namespaces and rejects bad profiles', async () => {
  const lab = await createLab({ delayMs: 1, loss: 0, rateMbit: 100 });
  assert.match(listedNamespaces(), new RegExp(lab.nsA));
  const final = await lab.close();
  assert.ok(final !== undefined, 'final counters from the emulator');
  const listed = listedNamespaces();
  assert.doesNotMatch(listed, new RegExp(lab.nsA));
  assert.doesNotMatch(listed, new RegExp(lab.nsB));
  assert.doesNotMatch(listed, new RegExp(`dwcp-${process.pid}-`), 'every lab of this test run is gone');

  await assert.rejects(createLab({ delayMs: 1, loss: 2, rateMbit: 0 }), /loss must be a number in \[0, 1\], got 2/);
});
