// HDE stage negotiation as a pure function: a link uses only the stages both
// peers announce at the same version, so agents of different builds
// interoperate (an old peer, a peer without delta, a peer at another version).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  LOCAL_STAGES,
  negotiate,
  parseStageCapability,
  stageCapabilities,
  stageVersion,
  type StageSet,
} from '../../../src/encoding/hde/stages.ts';
import { CAPABILITIES } from '../../../src/agent/agent.ts';

const FULL: StageSet = [
  { name: 'cdc', version: 1 },
  { name: 'dedup', version: 1 },
  { name: 'delta', version: 1 },
  { name: 'dict', version: 1 },
  { name: 'zstd', version: 1 },
];

function names(stages: StageSet): string[] {
  return stages.map((s) => `${s.name}@${s.version}`);
}

test('two peers of the same build use every stage they both run', () => {
  assert.deepEqual(names(negotiate(FULL, stageCapabilities(FULL))), ['cdc@1', 'dedup@1', 'delta@1', 'dict@1', 'zstd@1']);
});

test('a peer without delta interoperates: negotiation drops delta and keeps the rest', () => {
  const peer = stageCapabilities(FULL.filter((s) => s.name !== 'delta'));
  const used = negotiate(FULL, peer);
  assert.deepEqual(names(used), ['cdc@1', 'dedup@1', 'dict@1', 'zstd@1']);
  assert.equal(stageVersion(used, 'delta'), null);
  // And the same answer from the peer's side: both ends agree.
  assert.deepEqual(names(negotiate(FULL.filter((s) => s.name !== 'delta'), stageCapabilities(FULL))), names(used));
});

test('a version mismatch drops the stage; the highest common version wins', () => {
  const peer = ['hde:cdc@1', 'hde:dedup@1', 'hde:delta@2', 'hde:zstd@1'];
  assert.deepEqual(names(negotiate(FULL, peer)), ['cdc@1', 'dedup@1', 'zstd@1']);
  const local: StageSet = [...FULL, { name: 'delta', version: 2 }, { name: 'delta', version: 3 }];
  assert.equal(stageVersion(negotiate(local, peer), 'delta'), 2);
});

test('a stage whose prerequisite is not common is dropped (dedup names cdc chunks)', () => {
  const peer = ['hde:cdc@2', 'hde:dedup@1', 'hde:zstd@1'];
  assert.deepEqual(names(negotiate(FULL, peer)), ['zstd@1']);
});

test('unknown and malformed entries are ignored, never an error', () => {
  const peer = ['hde:cdc@1', 'hde:quantum@1', 'hde:dedup', 'hde:dedup@0', 'hde:dedup@x', 'hde:dedup@99999999', 'HDE:DEDUP@1', 'objects', '', 'hde:zstd@1'];
  assert.deepEqual(names(negotiate(FULL, peer)), ['cdc@1', 'zstd@1']);
  assert.equal(parseStageCapability('hde:quantum@1'), null);
  assert.equal(parseStageCapability('hde:dedup@0'), null);
});

test('a peer of the build before stages (bare "zstd") keeps zstd and nothing else', () => {
  const old = ['objects', 'pg-wal', 'zstd', 'sha256-chain'];
  assert.deepEqual(names(negotiate(LOCAL_STAGES, old)), ['zstd@1']);
  assert.deepEqual(names(negotiate(LOCAL_STAGES, [])), []);
});

test('the agent announces its stages in the Hello capabilities', () => {
  for (const entry of stageCapabilities(LOCAL_STAGES)) assert.ok(CAPABILITIES.includes(entry), entry);
  assert.deepEqual(names(negotiate(LOCAL_STAGES, CAPABILITIES)), names(LOCAL_STAGES));
  // The objects stream answers cdc and dedup (dir-source.ts, dir-sink.ts), so both are announced.
  assert.ok(CAPABILITIES.includes('hde:cdc@1') && CAPABILITIES.includes('hde:dedup@1'));
});

test('this build announces delta@1 and dict@1; delta rides on dedup, so a peer with delta but without dedup gets neither', () => {
  assert.deepEqual(names(LOCAL_STAGES), ['cdc@1', 'dedup@1', 'delta@1', 'dict@1', 'zstd@1']);
  // A peer of the build before delta@1 and dict@1 (cdc, dedup, zstd): both dropped, dedup kept.
  assert.deepEqual(names(negotiate(LOCAL_STAGES, ['hde:cdc@1', 'hde:dedup@1', 'hde:zstd@1'])), ['cdc@1', 'dedup@1', 'zstd@1']);
  // Delta bases travel in dedup's ChunkQuery/ChunkHave: without dedup there is nowhere to ask.
  assert.deepEqual(names(negotiate(LOCAL_STAGES, ['hde:cdc@1', 'hde:delta@1', 'hde:zstd@1'])), ['cdc@1', 'zstd@1']);
  // dict@1 stands alone.
  assert.deepEqual(names(negotiate(LOCAL_STAGES, ['hde:dict@1'])), ['dict@1']);
});
