// The receiver's open path never leaves a sender waiting: two real agents
// in this process over real TLS sockets, the destination's sink wrapped by
// the test (fault injection passed in, never read from the environment).
// A recover that fails with EIO is refused as retryable, named in the
// sender's status and metrics, and retried until it works; a recover that
// refuses (SinkError) halts the stream on both sides; a recover slower than
// the open timeout makes the sender time out, count it, and retry.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../src/agent/agent.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { writeTwoRegion } from '../../src/cli/two-region.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { SinkError, type Sink } from '../../src/streams/stream.ts';
import { sleep, waitFor } from '../helpers/agent-process.ts';

const MiB = 1024 * 1024;
/** The open timeout the agents run with: every refusal must come well within it. */
const OPEN_TIMEOUT_S = 60;

interface Pair {
  dir: string;
  src: string;
  dst: string;
  source: Agent;
  dest: Agent;
  logs: string[];
  close(): Promise<void>;
}

/** A source and a destination agent in this process; recover of the destination's sink goes through `recover`. */
async function startPair(recover: (inner: Sink, state: Uint8Array, seq: number) => Promise<Uint8Array>, openTimeout = `${OPEN_TIMEOUT_S}s`): Promise<Pair> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-open-'));
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  await mkdir(dst, { recursive: true });
  await generateSampleTree(src, { totalBytes: 2 * MiB, largestBytes: 256 * 1024, seed: 7 });
  const setup = await writeTwoRegion({ dir, sourcePath: src, destPath: dst, carriers: 1, amstExtra: `  streamOpenTimeout: ${openTimeout}\n  initialBackoff: 100ms\n  maxBackoff: 1s` });
  const logs: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
  const wrapSink = (inner: Sink): Sink => ({
    streamId: inner.streamId,
    kind: inner.kind,
    recover: (state, seq) => recover(inner, state, seq),
    apply: (seq, meta, data) => inner.apply(seq, meta, data),
    flush: () => inner.flush(),
    close: () => inner.close(),
  });
  const dest = await Agent.start(await loadConfig(setup.destConfig), { logger: logger.child({ side: 'dest' }), wrapSink });
  const source = await Agent.start(await loadConfig(setup.sourceConfig), { logger: logger.child({ side: 'source' }) });
  return {
    dir, src, dst, source, dest, logs,
    close: async () => {
      await Promise.allSettled([source.stop(), dest.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Sum of a metric's values whose labels include all of `labels`. */
async function metric(agent: Agent, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = agent.metrics.registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values.filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)).reduce((sum, v) => sum + v.value, 0);
}

/** The source's one sender is in sync and everything it sent is durable. */
function inSync(pair: Pair): boolean {
  const senders = pair.source.status().senders;
  return senders.length === 1 && senders[0].progress?.inSync === true && senders[0].durableSeq === senders[0].sentSeq && senders[0].durableSeq > 0;
}

function eio(): Error {
  return Object.assign(new Error('EIO: i/o error, read spool index'), { code: 'EIO' });
}

test('a recover that fails with EIO: the sender gets a refusal naming it within the open timeout, retries, and completes once it works', { timeout: 180_000 }, async () => {
  let failures = 0;
  let failing = true;
  const pair = await startPair(async (inner, state, seq) => {
    if (failing) {
      failures++;
      throw eio();
    }
    return inner.recover(state, seq);
  });
  try {
    const started = performance.now();
    await waitFor('the sender names the refusal', async () => pair.source.status().senders.some((s) => s.faulted !== null), OPEN_TIMEOUT_S * 1000, 50);
    const tookMs = performance.now() - started;
    assert.ok(tookMs < OPEN_TIMEOUT_S * 1000, `refused after ${tookMs} ms`);
    const sender = pair.source.status().senders[0];
    assert.match(sender.faulted!, /destination refused the stream for now: recover sink to checkpoint seq 0: EIO: i\/o error/);
    assert.equal(sender.halted, null, 'EIO may pass: not halted');
    assert.ok((await metric(pair.source, 'dwcp_stream_faults_total', { side: 'sender', reason: 'open_refused' })) >= 1, 'sender counts the refusal');
    assert.equal(await metric(pair.source, 'dwcp_stream_retrying', { side: 'sender' }), 1);
    assert.ok((await metric(pair.dest, 'dwcp_stream_faults_total', { side: 'receiver', reason: 'EIO' })) >= 1, 'receiver counts the fault by errno');
    assert.match(pair.dest.status().receivers[0].faulted ?? '', /recover sink to checkpoint seq 0: EIO/);
    assert.ok(pair.logs.some((l) => l.includes('"msg":"stream open refused"') && l.includes('"retryable":true')), 'the refusal is logged');

    // It keeps retrying with backoff, and completes once recover works.
    await waitFor('a second attempt', async () => failures >= 2, 30_000, 50);
    failing = false;
    await waitFor('in sync', async () => inSync(pair), 120_000, 100);
    assert.deepEqual((await compareTrees(pair.src, pair.dst)).differences, []);
    assert.equal(pair.source.status().senders[0].faulted, null, 'the fault clears on progress');
    assert.equal(await metric(pair.source, 'dwcp_stream_retrying', { side: 'sender' }), 0);
    assert.equal(pair.source.lifecycle, 'RUNNING');
    assert.equal(pair.dest.lifecycle, 'RUNNING');
  } finally {
    await pair.close();
  }
});

test('a recover that refuses (SinkError): the stream halts on both sides with the reason, nothing is retried', { timeout: 120_000 }, async () => {
  let calls = 0;
  const pair = await startPair(async () => {
    calls++;
    throw new SinkError('spool was written with 4 shards, this sink has 2');
  });
  try {
    await waitFor('the sender halted', async () => pair.source.status().senders.some((s) => s.halted !== null), OPEN_TIMEOUT_S * 1000, 50);
    assert.match(pair.source.status().senders[0].halted!, /destination refused the stream: stream is halted: recover sink to checkpoint seq 0: spool was written with 4 shards/);
    assert.equal(await metric(pair.source, 'dwcp_stream_halted'), 1);
    assert.equal(await metric(pair.dest, 'dwcp_stream_halted'), 1);
    assert.match(pair.dest.status().receivers[0].halted ?? '', /spool was written with 4 shards/);
    await sleep(2000);
    assert.equal(calls, 1, 'a refusal is not retried');
  } finally {
    await pair.close();
  }
});

test('a recover slower than the open timeout: the sender times out, counts and logs it, retries, and completes', { timeout: 180_000 }, async () => {
  let calls = 0;
  const pair = await startPair(async (inner, state, seq) => {
    // The first recover takes 3 s, three times the open timeout.
    if (++calls === 1) await sleep(3000);
    return inner.recover(state, seq);
  }, '1s');
  try {
    await waitFor('in sync', async () => inSync(pair), 120_000, 100);
    assert.ok((await metric(pair.source, 'dwcp_stream_faults_total', { side: 'sender', reason: 'open_timeout' })) >= 1, `the timeout is counted (recover calls: ${calls})\n${pair.logs.filter((l) => /open|session|fault/.test(l)).join('')}`);
    assert.ok(pair.logs.some((l) => l.includes('destination did not answer the stream open within 1000 ms')), 'the timeout is logged');
    assert.deepEqual((await compareTrees(pair.src, pair.dst)).differences, []);
  } finally {
    await pair.close();
  }
});
