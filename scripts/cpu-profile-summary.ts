// Where an agent's CPU goes, by stage: reads the .cpuprofile files that
// `node --cpu-prof` wrote (one per thread: the main thread and every HDE
// worker) and sums sampled time per stage, per process.
//   NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof" node src/cli.ts bench --size 1GiB
//   node scripts/cpu-profile-summary.ts /tmp/prof [--gib 1] [--stacks zstd] [--self]
// A sample is put in the first stage whose rule matches a frame of its
// stack, leaf first (so a digest called from the receiver counts as
// digest, not as receiver). Time is sampled wall time of a running thread,
// i.e. CPU time of that thread; idle samples are left out.

import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** A stage and the frames that belong to it. */
interface Rule { stage: string; match(frame: CallFrame): boolean }

const urlHas = (...parts: string[]) => (f: CallFrame): boolean => parts.some((p) => f.url.includes(p));
const nameIs = (...names: string[]) => (f: CallFrame): boolean => names.includes(f.functionName);

/** Leaf-first rules; the first that matches any frame of a stack names its stage. */
const RULES: Rule[] = [
  { stage: 'gc', match: nameIs('(garbage collector)') },
  { stage: 'zstd', match: (f) => urlHas('zstd')(f) },
  { stage: 'sha256', match: (f) => urlHas('internal/crypto/hash', 'src/encoding/digest.ts')(f) },
  { stage: 'protobuf', match: urlHas('protobufjs', 'src/wire/messages.ts') },
  { stage: 'start-up (module loading)', match: urlHas('internal/modules/', 'node:internal/bootstrap', 'internal/main/') },
  { stage: 'thread messages', match: nameIs('postMessage', 'receiveMessageOnPort') },
  { stage: 'tls + socket', match: urlHas('_tls_wrap', 'internal/tls', 'internal/stream_base_commons', 'node:net', 'internal/net') },
  { stage: 'file i/o', match: urlHas('internal/fs', 'node:fs', 'beneath-root.ts', 'native-bindings') },
  { stage: 'logging', match: urlHas('/pino', 'sonic-boom') },
  { stage: 'consensus', match: urlHas('etcd3', 'grpc', 'src/consensus/', 'src/acp/') },
  { stage: 'metrics', match: urlHas('prom-client', 'src/agent/metrics.ts') },
];

/** The stage of the leaf-most frame that some rule claims. */
function firstStage(frames: CallFrame[]): string | undefined {
  for (const f of frames) {
    const rule = RULES.find((r) => r.match(f));
    if (rule) return rule.stage;
  }
  return undefined;
}

/** Sampled microseconds per stage of one profile (one thread). */
function stagesOf(profile: Profile, stacksOf: string | undefined, stacks: Map<string, number>, selfTimes?: Map<string, number>): Map<string, number> {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const stageOfNode = new Map<number, string>();
  const stageOf = (id: number): string => {
    const known = stageOfNode.get(id);
    if (known !== undefined) return known;
    const frames: CallFrame[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) frames.push(byId.get(at)!.callFrame);
    const leaf = frames[0]!;
    let stage: string;
    if (leaf.functionName === '(idle)') stage = 'idle';
    else if (leaf.functionName === '(program)') stage = 'native (unattributed)';
    else {
      stage = firstStage(frames) ?? projectFile(frames) ?? 'other';
    }
    stageOfNode.set(id, stage);
    return stage;
  };
  const out = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    const stage = stageOf(id);
    const dt = profile.timeDeltas[i] ?? 0;
    out.set(stage, (out.get(stage) ?? 0) + dt);
    if (selfTimes !== undefined) {
      const f = byId.get(id)!.callFrame;
      const key = `${f.functionName || '(anon)'}@${basename(f.url)}:${f.lineNumber + 1} [${stage}]`;
      selfTimes.set(key, (selfTimes.get(key) ?? 0) + dt);
    }
    if (stacksOf !== undefined && stage === stacksOf) {
      const frames: string[] = [];
      for (let at: number | undefined = id; at !== undefined && frames.length < 8; at = parent.get(at)) {
        const f = byId.get(at)!.callFrame;
        frames.push(`${f.functionName || '(anon)'}@${basename(f.url)}:${f.lineNumber + 1}`);
      }
      const key = frames.join(' < ');
      stacks.set(key, (stacks.get(key) ?? 0) + dt);
    }
  }
  return out;
}

/** The leaf-most project source file of a stack, as a stage name. */
function projectFile(frames: CallFrame[]): string | undefined {
  const f = frames.find((fr) => fr.url.includes('/src/') || fr.url.includes('/netbench/'));
  if (!f) return undefined;
  const rel = f.url.slice(f.url.lastIndexOf('/src/') >= 0 ? f.url.lastIndexOf('/src/') + 1 : f.url.lastIndexOf('/netbench/') + 1);
  return rel;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { gib: { type: 'string' }, stacks: { type: 'string' }, top: { type: 'string', default: '25' }, self: { type: 'boolean', default: false } } });
  const dir = positionals[0];
  if (!dir) throw new Error('usage: cpu-profile-summary.ts DIR [--gib N] [--stacks STAGE]');
  const gib = values.gib ? Number(values.gib) : null;
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
  const perPid = new Map<string, Map<string, number>>();
  const selfPerPid = new Map<string, Map<string, number>>();
  const stacks = new Map<string, number>();
  for (const file of files) {
    const pid = file.split('.')[3] ?? '?';
    const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as Profile;
    const self = selfPerPid.get(pid) ?? new Map<string, number>();
    selfPerPid.set(pid, self);
    const stages = stagesOf(profile, values.stacks, stacks, values.self ? self : undefined);
    const acc = perPid.get(pid) ?? new Map<string, number>();
    for (const [k, v] of stages) acc.set(k, (acc.get(k) ?? 0) + v);
    perPid.set(pid, acc);
  }
  for (const [pid, stages] of perPid) {
    stages.delete('idle');
    const total = [...stages.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(`\npid ${pid}: ${(total / 1e6).toFixed(2)} CPU s${gib ? ` = ${(total / 1e6 / gib).toFixed(2)} s/GiB` : ''}\n`);
    const rows = [...stages].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top));
    for (const [stage, us] of rows) {
      process.stdout.write(`  ${(us / 1e6).toFixed(2).padStart(7)} s  ${((100 * us) / total).toFixed(1).padStart(5)} %  ${stage}\n`);
    }
    if (values.self) {
      process.stdout.write(`  top functions by self time:\n`);
      for (const [fn, us] of [...selfPerPid.get(pid)!].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
        process.stdout.write(`    ${(us / 1e6).toFixed(2).padStart(7)} s  ${fn}\n`);
      }
    }
  }
  if (values.stacks !== undefined) {
    process.stdout.write(`\nstacks of ${values.stacks}:\n`);
    for (const [k, us] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 15)) process.stdout.write(`  ${(us / 1e6).toFixed(2).padStart(7)} s  ${k}\n`);
  }
}

main().catch((err: Error) => {
  process.stderr.write(`cpu-profile-summary: ${err.message}\n`);
  process.exit(1);
});
