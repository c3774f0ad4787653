// Runs one fuzz target under jazzer.js (libFuzzer with coverage feedback
// from instrumented ES modules) in a child process, starting from the
// target's committed seed corpus. Used by `npm run fuzz` (see
// fuzz/README.md) and by the bounded runs in test/fuzz/.
//
//   node fuzz/run.ts --target NAME [--seconds N | --runs N] [--seed N] [--corpus DIR]
//   node fuzz/run.ts --target NAME --reproduce FILE
//   node fuzz/run.ts --list

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { jazzerEnv } from './jazzer-compat.ts';

/** One fuzz target: its module under fuzz/targets/ and how to run it. */
export interface FuzzTarget {
  /** What it fuzzes, one line (shown by --list). */
  about: string;
  /** True when fuzz() returns a promise (socket targets); others run in jazzer's --sync mode. */
  async: boolean;
  /** Largest input libFuzzer generates, bytes. */
  maxLen: number;
  /** Executions in the bounded run inside the test suite (a few seconds on a loaded machine). */
  testRuns: number;
  /** jazzer bug detectors to switch off (the target does on purpose what they flag). */
  disableBugDetectors?: string[];
}

/** The targets, by name (= file fuzz/targets/NAME.ts, seed corpus fuzz/corpus/NAME/, optional dictionary fuzz/dict/NAME.dict). */
export const FUZZ_TARGETS: Readonly<Record<string, FuzzTarget>> = {
  'frame-decoder': { about: 'length-prefixed framing state machine, arbitrary splits', async: false, maxLen: 4096, testRuns: 20_000 },
  envelope: { about: 'protobuf codecs: Envelope, ObjectOp, Manifest, WalRecord, WalResume; round trips', async: false, maxLen: 4096, testRuns: 10_000 },
  'pg-protocol': { about: 'PostgreSQL protocol framing and body parsers, arbitrary splits', async: false, maxLen: 4096, testRuns: 5_000 },
  walsender: { about: 'walsender endpoint over loopback: startup, SASL, replication commands', async: true, maxLen: 4096, testRuns: 300, disableBugDetectors: ['ssrf'] },
  scram: { about: 'SCRAM-SHA-256 server: client-first and client-final parsing, proof check', async: false, maxLen: 1024, testRuns: 3_000 },
  config: { about: 'config loader: YAML text to Config or ConfigError', async: false, maxLen: 8192, testRuns: 1_000 },
};

/** Seed used when none is given: runs are reproducible. */
export const DEFAULT_FUZZ_SEED = 1;
/** libFuzzer's per-input timeout, seconds: an input running longer is a finding (a hang). */
const INPUT_TIMEOUT_S = 10;

const FUZZ_DIR = dirname(fileURLToPath(import.meta.url));
const JAZZER_CLI = createRequire(import.meta.url).resolve('@jazzer.js/core/dist/cli.js');

/** How to run a target. */
export interface FuzzRunOptions {
  /** Stop after this many executions (seed inputs included). */
  runs?: number;
  /** Stop after this many seconds. */
  seconds?: number;
  /** libFuzzer's random seed; default DEFAULT_FUZZ_SEED. */
  seed?: number;
  /** Directory new corpus entries go to; default a fresh temporary one. */
  corpus?: string;
  /** Run only these input files, once each, instead of fuzzing. */
  reproduce?: string[];
  /** Stream jazzer's output to this process's stderr as it comes (else only collected). */
  echo?: boolean;
}

/** What a run ended with. */
export interface FuzzRunResult {
  /** jazzer's exit code: 0 when no finding. */
  exitCode: number;
  /** jazzer's output (stdout and stderr). */
  output: string;
  /** Where a crashing input was written, when there was one. */
  reproducer?: string;
  /** Directory of the run's findings and (by default) its grown corpus. */
  workDir: string;
}

/** Runs one target to its bound; resolves with the result (a finding is exitCode != 0, not a rejection). */
export async function runFuzzTarget(name: string, options: FuzzRunOptions = {}): Promise<FuzzRunResult> {
  const target = FUZZ_TARGETS[name];
  if (!target) throw new Error(`unknown fuzz target "${name}" (known: ${Object.keys(FUZZ_TARGETS).join(', ')})`);
  const workDir = mkdtempSync(join(tmpdir(), `dwcp-fuzz-${name}-`));
  const corpus = options.corpus ?? join(workDir, 'corpus');
  mkdirSync(corpus, { recursive: true });

  // jazzer <target> [--sync] <corpus dirs or inputs> -- <libFuzzer flags>
  const libFuzzerFlags = [
    `-seed=${options.seed ?? DEFAULT_FUZZ_SEED}`,
    `-max_len=${target.maxLen}`,
    `-timeout=${INPUT_TIMEOUT_S}`,
    `-artifact_prefix=${workDir}/`,
  ];
  const dictionary = join(FUZZ_DIR, 'dict', `${name}.dict`);
  if (existsSync(dictionary)) libFuzzerFlags.push(`-dict=${dictionary}`);
  if (options.runs !== undefined) libFuzzerFlags.push(`-runs=${options.runs}`);
  if (options.seconds !== undefined) libFuzzerFlags.push(`-max_total_time=${options.seconds}`);
  const inputs = options.reproduce ?? [corpus, join(FUZZ_DIR, 'corpus', name)];
  const args = [
    '--no-warnings',
    '--import', join(FUZZ_DIR, 'preload.ts'),
    JAZZER_CLI,
    join(FUZZ_DIR, 'targets', `${name}.ts`),
    ...(target.async ? [] : ['--sync']),
    ...(target.disableBugDetectors ?? []).map((d) => `--disable_bug_detectors=${d}`),
    ...inputs,
    '--',
    ...libFuzzerFlags,
  ];

  // Collect output; a finding names its reproducer ("Test unit written to ...").
  const child = spawn(process.execPath, args, { env: { ...process.env, ...jazzerEnv() }, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  const collect = (chunk: Buffer) => {
    chunks.push(chunk);
    if (options.echo) process.stderr.write(chunk);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exitCode = await new Promise<number>((done, fail) => {
    child.once('error', fail);
    child.once('close', (code, signal) => done(code ?? (signal ? 128 : 1)));
  });
  const output = Buffer.concat(chunks).toString('utf8');
  const written = /Test unit written to (\S+)/.exec(output)?.[1];
  const reproducer = written ?? readdirSync(workDir).filter((f) => /^(crash|timeout|oom|leak)-/.test(f)).map((f) => join(workDir, f))[0];
  return { exitCode, output, reproducer, workDir };
}

// Command line: parse, run, report.
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      seconds: { type: 'string' },
      runs: { type: 'string' },
      seed: { type: 'string' },
      corpus: { type: 'string' },
      reproduce: { type: 'string', multiple: true },
      list: { type: 'boolean' },
    },
  });
  if (values.list || !values.target) {
    for (const [name, target] of Object.entries(FUZZ_TARGETS)) console.log(`${name.padEnd(14)} ${target.about}`);
    if (!values.list) process.exitCode = 2;
    return;
  }
  const number = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${flag}: expected a whole number (got "${text}")`);
    return n;
  };
  const result = await runFuzzTarget(values.target, {
    seconds: number('seconds', values.seconds) ?? (values.runs === undefined && !values.reproduce ? 60 : undefined),
    runs: number('runs', values.runs),
    seed: number('seed', values.seed),
    corpus: values.corpus === undefined ? undefined : resolve(values.corpus),
    reproduce: values.reproduce?.map((f) => resolve(f)),
    echo: true,
  });
  console.error(result.exitCode === 0
    ? `fuzz ${values.target}: no finding (findings and corpus dir ${result.workDir})`
    : `fuzz ${values.target}: FINDING (exit ${result.exitCode}), reproducer ${result.reproducer ?? 'not written'}`);
  process.exitCode = result.exitCode;
}

if (import.meta.main) {
  main().catch((err: Error) => {
    console.error(`fuzz: ${err.message}`);
    process.exitCode = 2;
  });
}
