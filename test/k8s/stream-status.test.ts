// streamStatus: a DWCPStream's status from the agent's snapshot (pure).
// Conditions and their reasons, per-destination positions and lag, the
// SLO attainment, which agent writes, and lastTransitionTime kept while a
// condition's status stays.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentStatus } from '../../src/agent/agent.ts';
import type { StreamConfig } from '../../src/config/config.ts';
import { conditionKey, streamStatus, writesStatus } from '../../src/k8s/stream-status.ts';

const STREAM: StreamConfig = { id: 's', kind: 'objects', source: { region: 'eu', path: '/a', scanIntervalMs: 1000, watch: true }, destinations: [{ region: 'us', path: '/b' }], shards: 1 };

type Sender = AgentStatus['senders'][number];
const sender = (over: Partial<Sender> = {}): Sender => ({ streamId: 's', stream: 's', shard: 0, destination: 'us', sentSeq: 10, durableSeq: 10, halted: null, faulted: null, session: 1, lagSeconds: 0, sloAttainment: 0.998, progress: { filesTotal: 3, filesDone: 3, bytesTotal: 300, bytesDone: 300, inSync: true }, ...over });
const agent = (senders: Sender[]): AgentStatus => ({ state: 'RUNNING', region: 'eu', nodeId: 'eu-1', senders, receivers: [], links: [], pgWal: [] });
const NOW = new Date('2026-12-01T00:00:00Z');
const LATER = new Date('2026-12-01T00:05:00Z');

test('in sync: Ready, not Progressing, not Degraded; position, lag and attainment per destination', () => {
  const status = streamStatus({ stream: STREAM, agent: agent([sender()]), specProblem: null, previous: [], generation: 3, now: NOW })!;
  assert.deepEqual(status.conditions!.map((c) => [c.type, c.status, c.reason]), [['Ready', 'True', 'Replicating'], ['Progressing', 'False', 'InSync'], ['Degraded', 'False', 'AsExpected']]);
  assert.deepEqual(status.destinations, [{ region: 'us', durablePosition: '10', lagBytes: 0, lagSeconds: 0, sloAttainment: 0.998, lastError: '' }]);
  assert.equal(status.sender, 'eu-1');
  assert.equal(status.observedGeneration, 3);
});

test('behind, halted, faulted, a refused spec: each shows with its reason', () => {
  const behind = streamStatus({ stream: STREAM, agent: agent([sender({ sentSeq: 12, lagSeconds: 2.5, progress: { filesTotal: 4, filesDone: 3, bytesTotal: 400, bytesDone: 300, inSync: false } })]), specProblem: null, previous: [], now: NOW })!;
  assert.equal(behind.conditions![1].status, 'True');
  assert.equal(behind.lagSeconds, 2.5);
  assert.equal(behind.destinations![0].lagBytes, 100);
  const halted = streamStatus({ stream: STREAM, agent: agent([sender({ halted: 'chain mismatch' })]), specProblem: null, previous: [], now: NOW })!;
  assert.deepEqual(halted.conditions!.map((c) => [c.type, c.status, c.reason]), [['Ready', 'False', 'Halted'], ['Progressing', 'False', 'InSync'], ['Degraded', 'True', 'Halted']]);
  assert.equal(halted.destinations![0].lastError, 'chain mismatch');
  const down = streamStatus({ stream: STREAM, agent: agent([sender({ session: 0 })]), specProblem: null, previous: [], now: NOW })!;
  assert.equal(down.conditions![0].reason, 'LinkDown');
  const invalid = streamStatus({ stream: STREAM, agent: agent([sender()]), specProblem: 'spec.destinations: must not be empty', previous: [], now: NOW })!;
  assert.deepEqual([invalid.conditions![2].status, invalid.conditions![2].reason, invalid.conditions![2].message], ['True', 'InvalidSpec', 'spec.destinations: must not be empty']);
  assert.notEqual(conditionKey(invalid), conditionKey(streamStatus({ stream: STREAM, agent: agent([sender()]), specProblem: null, previous: [], now: NOW })!));
});

test('lastTransitionTime stays while a condition keeps its status', () => {
  const first = streamStatus({ stream: STREAM, agent: agent([sender()]), specProblem: null, previous: [], now: NOW })!;
  const again = streamStatus({ stream: STREAM, agent: agent([sender({ sentSeq: 11 })]), specProblem: null, previous: first.conditions!, now: LATER })!;
  assert.equal(again.conditions![0].lastTransitionTime, NOW.toISOString(), 'Ready stayed True');
  assert.equal(again.conditions![1].lastTransitionTime, LATER.toISOString(), 'Progressing turned True');
});

test('only the sender of the first shard to the first destination writes; an agent sending nothing has no status', () => {
  assert.equal(writesStatus(STREAM, agent([sender()])), true);
  assert.equal(writesStatus(STREAM, agent([sender({ shard: 1 })])), false);
  assert.equal(writesStatus(STREAM, agent([])), false);
  assert.equal(streamStatus({ stream: STREAM, agent: agent([]), specProblem: null, previous: [], now: NOW }), null);
});
