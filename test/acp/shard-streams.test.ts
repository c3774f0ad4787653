// Sharded objects streams below the agent: K DirSource/DirSink pairs, one per
// shard, on one source tree and one shared destination directory (the link
// replaced by the in-process harness of test/objects). Each shard sends,
// reports and accepts only its own top-level directories, and one shard's
// recover never drops another shard's partial file; ShardOwnership starts
// and ends an agent's turn on a shard as members come and go. Plus the `shards`
// config field: default, range, and pg-wal refusing it (errors name the field).

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { DirSource } from '../../src/streams/objects/dir-source.ts';
import { SinkError } from '../../src/streams/stream.ts';
import { manifestCodec, objectOpCodec } from '../../src/wire/messages.ts';
import { ownerOf, shardKeyOf, shardOf } from '../../src/acp/shard-ring.ts';
import { ShardOwnership, type ShardTurn } from '../../src/acp/shard-ownership.ts';
import { subStreamsOf } from '../../src/acp/sub-streams.ts';
import { parseConfig } from '../../src/config/load-config.ts';
import { ConfigError } from '../../src/config/config-error.ts';
import type { ObjectsStreamConfig } from '../../src/config/config.ts';
import { pump, treeDifferences } from '../objects/link-harness.ts';

const SHARDS = 4;
const TOP_DIRS = 12;
const CHUNK = 16 * 1024;

/** Empty source and destination directories in a temp dir removed after the test. */
function dirs(t: TestContext, name: string): { base: string; src: string; dst: string } {
  const base = mkdtempSync(join(tmpdir(), `dwcp-shards-${name}-`));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const src = join(base, 'src');
  const dst = join(base, 'dst');
  mkdirSync(src);
  mkdirSync(dst);
  return { base, src, dst };
}

/** A sharded stream's parts, as the agent builds them. */
function parts() {
  const stream: ObjectsStreamConfig = { id: 'objs', kind: 'objects', source: { region: 'a', path: '/x', scanIntervalMs: 1000, watch: false }, destinations: [], shards: SHARDS };
  return subStreamsOf(stream);
}

function source(root: string, part: ReturnType<typeof parts>[number]): DirSource {
  return new DirSource({ streamId: part.id, root, include: part.include, chunkBytes: CHUNK, once: true, watch: false });
}

function sink(root: string, part: ReturnType<typeof parts>[number]): DirSink {
  return new DirSink({ streamId: part.id, root, include: part.include, tempName: part.id });
}

// A tree of TOP_DIRS top-level directories (two levels) and a few root files.
function makeTree(root: string): void {
  for (let d = 0; d < TOP_DIRS; d++) {
    mkdirSync(join(root, `dir-${d}`, 'sub'), { recursive: true });
    writeFileSync(join(root, `dir-${d}`, 'a.txt'), `file a of ${d}`);
    writeFileSync(join(root, `dir-${d}`, 'sub', 'b.bin'), randomBytes(3 * CHUNK + d));
  }
  for (let f = 0; f < 3; f++) writeFileSync(join(root, `root-${f}.txt`), `root file ${f}`);
}

test('sub-streams: one per shard with ids <stream>~k and filters that split every path exactly once', () => {
  const ps = parts();
  assert.deepEqual(ps.map((p) => p.id), ['objs~0', 'objs~1', 'objs~2', 'objs~3']);
  for (const path of ['dir-1', 'dir-1/sub/b.bin', 'root-0.txt', 'dir-7/a.txt']) {
    const owners = ps.filter((p) => p.include!(path)).map((p) => p.shard);
    assert.deepEqual(owners, [shardOf(path, SHARDS)], `${path} is in exactly one shard`);
  }
  // A directory and everything below it share a shard (the filter is closed under descent).
  assert.equal(shardOf('dir-3', SHARDS), shardOf('dir-3/sub/deep/x', SHARDS));
  assert.equal(shardKeyOf('dir-3/sub/x'), 'dir-3');
  const pgWal = subStreamsOf({ id: 'db', kind: 'pg-wal' } as never);
  assert.deepEqual(pgWal.map((p) => [p.id, p.shards, p.include]), [['db', 1, undefined]]);
});

test('K shards into one directory: each sends and reports only its own paths; together the copy is identical', async (t) => {
  const { src, dst } = dirs(t, 'tree');
  makeTree(src);
  const ps = parts();
  assert.ok(new Set(readdirSync(src).map((n) => shardOf(n, SHARDS))).size === SHARDS, 'the tree spreads over every shard');

  // Shard by shard: a later shard's session sees the earlier shards' files at the destination and must leave them be.
  const checkpoints: Uint8Array[] = [];
  for (const p of ps) {
    const result = await pump(source(src, p), sink(dst, p));
    for (const op of result.ops) {
      const path = op.put?.path ?? op.mkdir?.path ?? op.delete?.path ?? op.rename?.to ?? '';
      assert.equal(shardOf(path, SHARDS), p.shard, `${p.id} sent an op on ${path}`);
    }
    assert.equal(result.ops.filter((op) => op.delete).length, 0, `${p.id} deleted nothing`);
    checkpoints.push(result.checkpoint);
  }
  assert.deepEqual(treeDifferences(src, dst), []);

  // Each sink's manifest lists exactly its shard's part of the shared directory.
  for (const p of ps) {
    const manifest = manifestCodec.decode(await sink(dst, p).recover(checkpoints[p.shard], 0));
    assert.ok(manifest.entries.length > 0, `${p.id} has entries`);
    for (const e of manifest.entries) assert.equal(shardOf(e.path, SHARDS), p.shard, `${p.id} manifest lists ${e.path}`);
  }

  // A delete at the source reaches the destination through its own shard only.
  unlinkSync(join(src, 'dir-5', 'a.txt'));
  const owner = ps[shardOf('dir-5', SHARDS)];
  const state = await sink(dst, owner).recover(checkpoints[owner.shard], 0);
  const again = await pump(source(src, owner), sink(dst, owner), { checkpoint: checkpoints[owner.shard] });
  assert.ok(state.length > 0);
  assert.deepEqual(again.ops.map((op) => op.delete?.path), ['dir-5/a.txt']);
  assert.deepEqual(treeDifferences(src, dst), []);
});

test('a sink refuses ops on another shard\'s paths, before touching anything', async (t) => {
  const { dst: base } = dirs(t, 'refuse');
  const [p0] = parts();
  const foreign = Array.from({ length: 50 }, (_, i) => `dir-${i}`).find((n) => shardOf(n, SHARDS) !== 0)!;
  const s = sink(base, p0);
  await s.recover(new Uint8Array(0), 0);
  const ops = [
    { mkdir: { path: foreign, mode: 0o755, mtimeUs: 0 } },
    { delete: { path: `${foreign}/x` } },
    { put: { path: `${foreign}/x`, version: { size: 1, mtimeUs: 1, mode: 0o644 }, offset: 0 } },
  ];
  for (const [i, op] of ops.entries()) {
    await assert.rejects(s.apply(i + 1, objectOpCodec.encode(op), Buffer.from('x')), (err: Error) => err instanceof SinkError && /not in this sink's shard/.test(err.message));
  }
  assert.deepEqual(readdirSync(base).filter((n) => n !== '.dwcp-tmp'), [], 'nothing written');
  assert.throws(() => new DirSink({ streamId: 's', root: base, tempName: '../x' }), /tempName/);
});

test('one shard\'s recover keeps another shard\'s partial file: the other resumes mid-file', async (t) => {
  const { src, dst } = dirs(t, 'partial');
  const ps = parts();
  // One big file in a directory of shard 0, small files elsewhere.
  const big = Array.from({ length: 50 }, (_, i) => `big-${i}`).find((n) => shardOf(n, SHARDS) === 0)!;
  const other = Array.from({ length: 50 }, (_, i) => `small-${i}`).find((n) => shardOf(n, SHARDS) === 1)!;
  mkdirSync(join(src, big));
  writeFileSync(join(src, big, 'f.bin'), randomBytes(20 * CHUNK));
  mkdirSync(join(src, other));
  writeFileSync(join(src, other, 'g.txt'), 'small');

  // Shard 0 stops after its mkdir and 5 chunks: a durable partial in its own temp area.
  const first = await pump(source(src, ps[0]), sink(dst, ps[0]), { stopAfter: 6, flushEvery: 2 });
  assert.equal(manifestCodec.decode(first.checkpoint).partial?.offset, 5 * CHUNK);

  // Shard 1 runs a whole session (its recover cleans only its own temp area).
  await pump(source(src, ps[1]), sink(dst, ps[1]));

  // Shard 0 resumes at the durable offset, not from zero.
  const second = await pump(source(src, ps[0]), sink(dst, ps[0]), { checkpoint: first.checkpoint, seq: first.seq });
  const offsets = second.ops.flatMap((op) => (op.put ? [op.put.offset] : []));
  assert.equal(offsets[0], 5 * CHUNK, 'resumed mid-file');
  assert.equal(offsets.length, 15);
  assert.deepEqual(treeDifferences(src, dst), []);
});

test('config: shards defaults to 1, accepts 1..4096 on objects streams, and is refused for pg-wal (naming the field)', () => {
  const yaml = (streamExtra: string, kind = 'objects') => `
federation: f
region: eu-west
tls: { ca: /ca.pem, cert: /c.pem, key: /k.pem }
regions:
  - { name: eu-west, endpoints: ["127.0.0.1:7400"] }
  - { name: us-east, endpoints: ["127.0.0.1:7401"] }
streams:
  - id: s
    kind: ${kind}
${streamExtra}
    source: ${kind === 'objects' ? '{ region: eu-west, path: /data }' : '{ region: eu-west, connection: { host: 127.0.0.1, user: u } }'}
    destinations: [{ region: us-east, path: /sink }]
`;
  const issuesOf = (text: string): string[] => {
    try {
      parseConfig(text, '/etc/dwcp/dwcp.yaml');
    } catch (err) {
      if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
      throw err;
    }
    return [];
  };
  const shardsOf = (text: string): number => (parseConfig(text, '/etc/dwcp/dwcp.yaml').streams[0] as ObjectsStreamConfig).shards;
  assert.equal(shardsOf(yaml('')), 1);
  assert.equal(shardsOf(yaml('    shards: 8')), 8);
  assert.equal(shardsOf(yaml('    shards: 4096')), 4096);
  for (const bad of ['0', '4097', '2.5', 'many']) {
    const issues = issuesOf(yaml(`    shards: ${bad}`));
    assert.ok(issues.some((i) => i.startsWith('streams[0].shards')), `shards: ${bad} -> ${issues.join('; ')}`);
  }
  const pg = issuesOf(yaml('    shards: 2', 'pg-wal'));
  assert.ok(pg.includes('streams[0].shards: is only for kind objects'), pg.join('; '));
});

test('shard ownership: a turn starts when the ring places the shard here and ends when a join moves it away', async () => {
  // A member list the test changes by hand (the agent feeds a MemberView).
  const listeners: Array<() => void> = [];
  let ids = ['n1'];
  const members = {
    live: () => ids.map((nodeId) => ({ nodeId, region: 'r', capabilities: [], address: '', registeredAtMs: 0 })),
    onChange: (fn: () => void) => {
      listeners.push(fn);
    },
  };
  const setMembers = (next: string[]): void => {
    ids = next;
    for (const fn of listeners) fn();
  };
  const mine = new ShardOwnership(members, 'n1');
  const theirs = new ShardOwnership(members, 'n2');
  const ps = parts();
  // A shard that n2 takes from n1 when it joins.
  const moving = ps.find((p) => ownerOf(p.streamId, p.shard, ['n1', 'n2']) === 'n2')!;
  assert.ok(moving, 'some shard moves to n2');

  const abort = new AbortController();
  const turn = await mine.hold(moving, abort.signal);
  assert.equal(turn.signal.aborted, false);
  let theirTurn: ShardTurn | undefined;
  const waiting = theirs.hold(moving, abort.signal).then((t) => (theirTurn = t));
  await new Promise((r) => setImmediate(r));
  assert.equal(theirTurn, undefined, 'n2 waits while it is not a member');

  setMembers(['n1', 'n2']);
  assert.equal(turn.signal.aborted, true, 'n1 gives the shard up');
  assert.match((await turn.ended).message, /moved to another member/);
  await waiting;
  assert.equal(theirTurn!.signal.aborted, false, 'n2 holds it');

  // Unsharded streams are always held; the caller's abort ends a turn too.
  const whole = subStreamsOf({ id: 'one', kind: 'objects', source: { region: 'a', path: '/x', scanIntervalMs: 1, watch: false }, destinations: [], shards: 1 })[0];
  const always = await theirs.hold(whole, abort.signal);
  setMembers(['n1']);
  assert.equal(always.signal.aborted, false);
  assert.equal(theirTurn!.signal.aborted, true, 'n2 left: its turn ended');
  abort.abort(new Error('stopping'));
  assert.equal((await always.ended).message, 'stopping');
  await assert.rejects(theirs.hold(moving, abort.signal), /stopping/);
});

test('a resumed session sends the destination\'s partial file before files that appeared since (the sink keeps one partial)', async (t) => {
  // A shard handed over mid-file while new files keep arriving: the new owner resumes that file first.
  const { src, dst } = dirs(t, 'resume-order');
  mkdirSync(join(src, 'd'));
  writeFileSync(join(src, 'd', 'm-big.bin'), randomBytes(10 * CHUNK));
  const plain = (root: string) => new DirSource({ streamId: 's', root, chunkBytes: CHUNK, once: true, watch: false });
  const first = await pump(plain(src), new DirSink({ streamId: 's', root: dst }), { stopAfter: 4, flushEvery: 1 });
  assert.equal(manifestCodec.decode(first.checkpoint).partial?.offset, 3 * CHUNK);

  // Files sorted before the partial one appear at the source meanwhile.
  writeFileSync(join(src, 'd', 'a-new.txt'), 'new');
  writeFileSync(join(src, 'a-root.txt'), 'new too');
  const second = await pump(plain(src), new DirSink({ streamId: 's', root: dst }), { checkpoint: first.checkpoint, seq: first.seq });
  const puts = second.ops.flatMap((op) => (op.put ? [`${op.put.path}@${op.put.offset}`] : []));
  assert.equal(puts[0], `d/m-big.bin@${3 * CHUNK}`);
  assert.ok(puts.includes('d/a-new.txt@0') && puts.includes('a-root.txt@0'));
  assert.deepEqual(treeDifferences(src, dst), []);
});
