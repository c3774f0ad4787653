// Sharded objects stream on real etcd, rebalanced while transferring: two
// regions, three agents each, one objects stream split into 8 shards over a
// tree of 16 top-level directories (2 per shard). While files keep arriving
// at the source, a 4th source agent joins (it takes the shards the ring now
// gives it) and then one of the original agents is killed -9 (its shards move
// to the others after the lease TTL) while it has frames in flight. The copy must be identical (content
// hashes), every shard's merged audit log must hold each sequence number
// exactly once, and more than one source agent must have sent data.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { ownerOf, shardOf, shardStreamId } from '../../src/acp/shard-ring.ts';
import { AgentProcess, sleep, waitFor } from '../helpers/agent-process.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { DEST, SOURCE, moveTreeInto, tempDir, writeAcpConfigs, type AgentSpec } from '../helpers/acp-federation.ts';
import { auditProblems } from '../helpers/federation.ts';

const KiB = 1024;
/** Lease TTL of the agents, seconds. */
const LEASE_TTL_S = 2;
const SHARDS = 8;
/** Top-level directories per shard in the initial tree. */
const DIRS_PER_SHARD = 2;
const FILES_PER_DIR = 4;
const FILE_BYTES = 1024 * KiB;
/** One new file this often while members come and go, ms. */
const WRITE_EVERY_MS = 100;
const WRITTEN_FILE_BYTES = 256 * KiB;
const STREAM = 'objs';

/** 16 top-level directory names, exactly DIRS_PER_SHARD in every shard. */
function balancedDirs(): string[] {
  const perShard = new Array<number>(SHARDS).fill(0);
  const names: string[] = [];
  for (let i = 0; names.length < SHARDS * DIRS_PER_SHARD; i++) {
    const name = `dir-${i}`;
    const s = shardOf(name, SHARDS);
    if (perShard[s] >= DIRS_PER_SHARD) continue;
    perShard[s]++;
    names.push(name);
  }
  return names;
}

/** Per-agent goodput, sampled in the background (a killed agent keeps its last value). */
class GoodputSampler {
  readonly last = new Map<number, number>();
  #stop = false;
  readonly #done: Promise<void>;
  constructor(agents: AgentProcess[]) {
    this.#done = (async () => {
      while (!this.#stop) {
        for (const [i, a] of agents.entries()) {
          const v = await a.metric('dwcp_goodput_bytes_total').catch(() => undefined);
          if (v !== undefined) this.last.set(i, Math.max(v, this.last.get(i) ?? 0));
        }
        await sleep(200);
      }
    })();
  }
  /** Goodput of all agents so far, bytes. */
  total(): number {
    return [...this.last.values()].reduce((a, b) => a + b, 0);
  }
  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}

test('shard rebalance while transferring: an agent joins, another is killed -9; identical, each shard audited exactly once, several senders', { timeout: 150_000 }, async () => {
  const t0 = Date.now();
  const dir = await tempDir('dwcp-acp-shards-');
  const sourcePath = join(dir, 'src-tree');
  const destPath = join(dir, 'dst-tree');
  await mkdir(destPath, { recursive: true });
  await mkdir(sourcePath, { recursive: true });

  // Initial tree, staged then moved in at once.
  const dirs = balancedDirs();
  const initialBytes = dirs.length * FILES_PER_DIR * FILE_BYTES;
  const staging = join(dir, 'staging');
  for (const d of dirs) {
    await mkdir(join(staging, d, 'sub'), { recursive: true });
    for (let f = 0; f < FILES_PER_DIR; f++) await writeFile(join(staging, d, f % 2 ? 'sub' : '', `f-${f}.bin`), randomBytes(FILE_BYTES));
  }

  const etcd: EtcdCluster[] = [];
  const agents: Record<string, AgentProcess[]> = { [SOURCE]: [], [DEST]: [] };
  let specs: Record<string, AgentSpec[]> = {};
  // Background work, ended in finally whatever happens (a loop left running would keep the test process alive).
  let sampler: GoodputSampler | null = null;
  let writing = false;
  let writer: Promise<void> = Promise.resolve();
  const tail = (): string => Object.values(agents).flat().map((a) => `--- ${a.configPath}\n${a.logs.slice(-25).join('\n')}`).join('\n');
  try {
    // Two 3-member etcd clusters; configs for 4 agents per region, of which the destination runs 3.
    etcd.push(await startEtcdCluster({ members: 3 }), await startEtcdCluster({ members: 3 }));
    specs = await writeAcpConfigs({ dir, agentsPerRegion: 4, streams: [{ id: STREAM, sourcePath, destPath }], etcd: { [SOURCE]: etcd[0].endpoints, [DEST]: etcd[1].endpoints }, leaseTtl: `${LEASE_TTL_S}s` });
    const destEndpoints = (n: number): string => specs[DEST].slice(0, n).map((a) => `"127.0.0.1:${a.port}"`).join(', ');
    for (const a of [...specs[SOURCE], ...specs[DEST]]) {
      const yaml = await readFile(a.configPath, 'utf8');
      const sharded = yaml.replace('    kind: objects\n', `    kind: objects\n    shards: ${SHARDS}\n`).replace(`[${destEndpoints(4)}]`, `[${destEndpoints(3)}]`);
      assert.notEqual(sharded, yaml);
      await writeFile(a.configPath, sharded);
    }
    for (const region of [DEST, SOURCE]) {
      agents[region] = specs[region].map((s) => new AgentProcess(s.configPath, s.httpPort));
      await Promise.all(agents[region].slice(0, 3).map((a) => a.start()));
    }
    const sources = agents[SOURCE];
    sampler = new GoodputSampler(sources);
    const goodput = sampler;

    // Which live source agent sends which shard (a sender with a link session).
    const holders = async (live: number[]): Promise<Map<string, number>> => {
      const byShard = new Map<string, number>();
      for (const i of live) {
        const st = await sources[i].status().catch(() => null);
        for (const s of st?.senders ?? []) if (s.session > 0) byShard.set(s.streamId, i);
      }
      return byShard;
    };
    const allHeld = async (live: number[]): Promise<boolean> => (await holders(live)).size === SHARDS;
    // Every shard sent by the agent the ring places it on among the live agents.
    const placedByRing = async (live: number[]): Promise<boolean> => {
      const held = await holders(live);
      const ids = live.map((i) => specs[SOURCE][i].nodeId);
      for (let k = 0; k < SHARDS; k++) {
        const h = held.get(shardStreamId(STREAM, k));
        if (h === undefined || specs[SOURCE][h].nodeId !== ownerOf(STREAM, k, ids)) return false;
      }
      return true;
    };

    await moveTreeInto(staging, sourcePath);
    await waitFor('every shard sent by its ring owner among the first 3 agents', () => placedByRing([0, 1, 2]), 30_000, 100);
    await waitFor('first durable progress', async () => goodput.total() > 0, 30_000, 100);

    // Files keep arriving in every directory while members come and go.
    writing = true;
    let written = 0;
    writer = (async () => {
      while (writing) {
        const d = dirs[written % dirs.length];
        await writeFile(join(sourcePath, d, `w-${written}.bin`), randomBytes(WRITTEN_FILE_BYTES));
        written++;
        await sleep(WRITE_EVERY_MS);
      }
    })();

    // A 4th source agent joins: it must end up sending the shards the ring gives it.
    const sentAtJoin = goodput.total();
    assert.ok(sentAtJoin < initialBytes, 'the initial tree was still being transferred at the join');
    const joinAt = Date.now();
    await sources[3].start();
    const startedMs = Date.now() - joinAt;
    await waitFor('the new agent sends a shard', async () => (await holders([3])).size > 0, 20_000, 100);
    const joinedMs = Date.now() - joinAt;
    await waitFor('every shard sent by its ring owner among 4 agents', () => placedByRing([0, 1, 2, 3]), 20_000, 100);
    const afterJoin = await holders([0, 1, 2, 3]);

    // Kill -9 the original agent holding the most shards; the others take them over.
    const counts = [0, 1, 2].map((i) => [...afterJoin.values()].filter((h) => h === i).length);
    const victim = counts.indexOf(Math.max(...counts));
    const victimShards = [...afterJoin.entries()].filter(([, h]) => h === victim).map(([id]) => id);
    // Kill it while it has frames sent and not yet durable: mid-transfer, not between files.
    await waitFor('frames in flight at the agent to kill', async () => (await sources[victim].status()).senders.some((x) => x.sentSeq > x.durableSeq), 20_000, 20);
    const sentAtKill = (await Promise.all([0, 1, 2, 3].map((i) => sources[i].metric('dwcp_goodput_bytes_total')))).reduce((a, b) => a + b, 0);
    const killAt = Date.now();
    await sources[victim].kill9();
    const live = [0, 1, 2, 3].filter((i) => i !== victim);
    await waitFor('every shard held by the survivors', () => allHeld(live), LEASE_TTL_S * 1000 + 15_000, 100);
    const takenOverMs = Date.now() - killAt;
    await waitFor('every shard sent by its ring owner among the survivors', () => placedByRing(live), 15_000, 100);
    await sleep(1_000);
    writing = false;
    await writer;

    // Finish: identical trees, then every shard in sync (all its records durable).
    await waitFor('identical trees', async () => (await compareTrees(sourcePath, destPath)).identical, 60_000, 500);
    await waitFor('every shard in sync', async () => {
      let inSync = 0;
      for (const i of live) for (const s of (await sources[i].status()).senders) if (s.progress?.inSync) inSync++;
      return inSync === SHARDS;
    }, 30_000, 250);
    const cmp = await compareTrees(sourcePath, destPath);
    assert.deepEqual(cmp.differences, []);
    assert.equal(cmp.files, dirs.length * FILES_PER_DIR + written);

    // Every shard's merged audit (all destination agents): each sequence number exactly once.
    const perShard: string[] = [];
    for (let k = 0; k < SHARDS; k++) {
      const id = shardStreamId(STREAM, k);
      const seqs: number[] = [];
      for (const s of specs[DEST].slice(0, 3)) {
        const text = await readFile(join(s.dataDir, 'audit', `${id}.log`), 'utf8').catch(() => '');
        for (const line of text.split('\n')) if (line !== '') seqs.push(Number(line));
      }
      seqs.sort((a, b) => a - b);
      assert.ok(seqs.length > 0, `shard ${id} applied records`);
      assert.deepEqual(auditProblems(seqs), [], `shard ${id}`);
      perShard.push(`${k}:${seqs.length}`);
    }

    // More than one source agent sent data; the newcomer among them.
    await goodput.stop();
    const senders = [...goodput.last.entries()].filter(([, v]) => v > 0);
    assert.ok(senders.length > 1, `source agents with goodput: ${JSON.stringify([...goodput.last])}`);
    assert.ok((goodput.last.get(3) ?? 0) > 0, 'the agent that joined sent data');
    const fenced = (await Promise.all(agents[DEST].slice(0, 3).map((a) => a.metric('dwcp_frames_fenced_total')))).reduce((x, y) => x + y, 0);
    const mib = (b: number): string => (b / 1024 / 1024).toFixed(1);
    console.log(`shard rebalance: ${SHARDS} shards, ${cmp.files} files, ${mib(cmp.bytes)} MiB (${written} written during the changes); `
      + `durable at join ${mib(sentAtJoin)} MiB, at kill ${mib(sentAtKill)} MiB; `
      + `join -> newcomer up after ${startedMs} ms, sending after ${joinedMs} ms (holds ${[...afterJoin.values()].filter((h) => h === 3).length} shards); `
      + `kill -9 of agent ${victim + 1} (${victimShards.join(', ')}) -> all shards held again after ${takenOverMs} ms (ttl ${LEASE_TTL_S} s); `
      + `goodput MiB per agent ${[...goodput.last.entries()].map(([i, v]) => `${i + 1}:${mib(v)}`).join(' ')}; records per shard ${perShard.join(' ')}; `
      + `fenced at destination ${fenced}; total ${Date.now() - t0} ms`);
  } catch (err) {
    console.error(tail());
    // Who sends what now, as the agents see it.
    for (const [i, a] of agents[SOURCE].entries()) {
      const st = await a.status().catch(() => null);
      if (st) console.error(`source agent ${i + 1}: ${st.senders.map((x) => `${x.streamId}@session${x.session}${x.halted ? ` halted: ${x.halted}` : ''}`).join(' ') || 'no senders'}; links ${JSON.stringify(st.links)}`);
    }
    throw err;
  } finally {
    writing = false;
    await writer.catch(() => {});
    await sampler?.stop();
    for (const list of Object.values(agents)) for (const a of list) await a.kill9().catch(() => {});
    for (const c of etcd) await c.stop().catch(() => {});
    const { rm } = await import('node:fs/promises');
    await rm(dir, { recursive: true, force: true });
  }
});
