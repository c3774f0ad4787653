// A real PostgreSQL 15 for tests: initdb (or pg_basebackup for a standby) in
// a temp dir, run as the unprivileged user dwcp-test (PostgreSQL refuses
// root), listening on 127.0.0.1 only, on a free port. Every process started
// here is ended by its pid.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from './free-port.ts';

/** Where Debian puts PostgreSQL 15's binaries. */
export const PG_BIN = '/usr/lib/postgresql/15/bin';
/** Unprivileged system user the servers run as. */
export const PG_OS_USER = 'dwcp-test';
/** Superuser created by initdb. */
export const PG_SUPERUSER = 'postgres';
/** How long a server may take to accept connections, ms. */
const START_TIMEOUT_MS = 60_000;
/** How long a fast shutdown may take before SIGKILL, ms. */
const STOP_TIMEOUT_MS = 30_000;

/** Options of startPostgres. */
export interface StartPostgresOptions {
  port?: number;
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string>;
  /** Make a standby: pg_basebackup from host:port, primary_conninfo = conninfo (default that primary). */
  standbyOf?: { host: string; port: number; slot?: string; conninfo?: string };
  /** Use this (empty or absent) directory instead of a fresh temp dir. */
  dataDir?: string;
  /** Run in this network namespace (ip netns exec, then setpriv to dwcp-test); clients then connect over a Unix socket. */
  namespace?: string;
  /** Addresses to listen on beside 127.0.0.1 (e.g. a lab link address). */
  listenAddresses?: string[];
  /** Extra pg_hba.conf lines of a primary (e.g. trust for a lab subnet). */
  hba?: string[];
}

/** A running test server. */
export interface Pg {
  readonly port: number;
  /** Host clients use: 127.0.0.1, or the Unix socket directory when the server runs in a namespace. */
  readonly host: string;
  readonly dataDir: string;
  /** Postmaster pid (changes on restart). */
  readonly pid: number;
  /** Run SQL as the superuser; returns the rows. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Run pgbench against this server with the given arguments; returns stdout. */
  pgbench(args: string[]): Promise<string>;
  /** SIGKILL the postmaster (a crash). */
  kill(): Promise<void>;
  /** Stop (fast) if running and start again on the same port and data dir. */
  restart(): Promise<void>;
  /** Promote a standby and wait until it accepts writes. */
  promote(): Promise<void>;
  /** Stop the server and remove the temp dir. */
  stop(): Promise<void>;
}

/** Look up uid/gid of dwcp-test; fails with a message saying how to create it. */
export function pgOsUser(): { uid: number; gid: number } {
  const r = spawnSync('id', ['-u', PG_OS_USER], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', PG_OS_USER], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) {
    throw new Error(
      `system user ${PG_OS_USER} is missing (PostgreSQL refuses to run as root); create it with: ` +
        `useradd --system --no-create-home --shell /usr/sbin/nologin ${PG_OS_USER}`,
    );
  }
  if (!existsSync(join(PG_BIN, 'postgres'))) throw new Error(`PostgreSQL 15 binaries missing at ${PG_BIN} (apt-get install postgresql-15)`);
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** A free TCP port on 127.0.0.1 (below the ephemeral range). */
export { freePort };

/** Run a PostgreSQL binary as dwcp-test to completion; throws with its output on failure. */
function runAsPgUser(bin: string, args: string[], user: { uid: number; gid: number }, timeoutMs = 120_000, namespace?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawnAsPgUser(bin, args, user, namespace);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    timer.unref();
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${bin} ${args.join(' ')} exited ${code}: ${out.slice(-2000)}`));
    });
  });
}

/**
 * Spawn a PostgreSQL binary as dwcp-test; in a namespace, as root through
 * `ip netns exec` and setpriv (entering a namespace needs root).
 */
function spawnAsPgUser(bin: string, args: string[], user: { uid: number; gid: number }, namespace: string | undefined): ChildProcess {
  const env = { PATH: process.env.PATH, LANG: 'C', LC_ALL: 'C', HOME: tmpdir() };
  const stdio: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];
  if (namespace === undefined) return spawn(join(PG_BIN, bin), args, { uid: user.uid, gid: user.gid, env, stdio });
  return spawn('ip', ['netns', 'exec', namespace, 'setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', join(PG_BIN, bin), ...args], { env, stdio });
}

/** Start a PostgreSQL 15 server (primary by default, standby with standbyOf). */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<Pg> {
  const user = pgOsUser();
  const port = opts.port ?? (await freePort());
  const base = opts.dataDir ? undefined : mkdtempSync(join(tmpdir(), 'dwcp-pg-'));
  if (base) chownSync(base, user.uid, user.gid);
  const dataDir = opts.dataDir ?? join(base!, 'data');
  const ns = opts.namespace;
  // In a namespace the server's TCP ports are out of reach: clients use a Unix socket beside the data dir.
  const socketDir = ns === undefined ? undefined : join(dirname(dataDir), 'sock');
  if (socketDir !== undefined) {
    mkdirSync(socketDir, { recursive: true });
    chownSync(socketDir, user.uid, user.gid);
  }
  const host = socketDir ?? '127.0.0.1';
  const listen = `'${['127.0.0.1', ...(opts.listenAddresses ?? [])].join(',')}'`;
  const socketSetting = socketDir === undefined ? "''" : `'${socketDir}'`;

  if (opts.standbyOf) {
    const { host: primaryHost, port: primaryPort, slot, conninfo } = opts.standbyOf;
    await runAsPgUser('pg_basebackup', ['-h', primaryHost, '-p', String(primaryPort), '-U', PG_SUPERUSER, '-D', dataDir, '-X', 'stream', '-c', 'fast', '--no-sync'], user, undefined, ns);
    const primaryConninfo = conninfo ?? `host=${primaryHost} port=${primaryPort} user=${PG_SUPERUSER} application_name=standby`;
    let extra = `\nprimary_conninfo = '${primaryConninfo.replace(/'/g, "''")}'\n`;
    if (slot) extra += `primary_slot_name = '${slot}'\n`;
    appendFileSync(join(dataDir, 'postgresql.auto.conf'), extra);
    writeFileSync(join(dataDir, 'standby.signal'), '');
    chownSync(join(dataDir, 'standby.signal'), user.uid, user.gid);
  } else {
    await runAsPgUser('initdb', ['-D', dataDir, '-U', PG_SUPERUSER, '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], user, undefined, ns);
    const socketHba = socketDir === undefined ? [] : ['local all all trust', 'local replication all trust'];
    writeFileSync(
      join(dataDir, 'pg_hba.conf'),
      ['host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust', ...socketHba, ...(opts.hba ?? [])].join('\n') + '\n',
    );
    const settings: Record<string, string> = {
      listen_addresses: listen,
      unix_socket_directories: socketSetting,
      wal_level: 'replica',
      max_wal_senders: '10',
      max_replication_slots: '10',
      hot_standby: 'on',
      fsync: 'off',
      shared_buffers: '32MB',
      max_connections: '30',
      wal_keep_size: '0',
      ...opts.settings,
    };
    appendFileSync(join(dataDir, 'postgresql.conf'), '\n' + Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  }
  if (opts.standbyOf && (opts.settings || ns !== undefined)) {
    // A standby's own addresses and socket, not the primary's it copied.
    const own = ns === undefined ? {} : { listen_addresses: listen, unix_socket_directories: socketSetting };
    appendFileSync(join(dataDir, 'postgresql.conf'), '\n' + Object.entries({ ...own, ...opts.settings }).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  }

  let child: ChildProcess | undefined;
  let log = '';
  const launch = async (): Promise<void> => {
    log = '';
    child = spawnAsPgUser('postgres', ['-D', dataDir, '-p', String(port)], user, ns);
    child.stdout!.on('data', (d) => (log = (log + d).slice(-20000)));
    child.stderr!.on('data', (d) => (log = (log + d).slice(-20000)));
    const exited = new Promise<never>((_, reject) =>
      child!.once('exit', (code) => reject(new Error(`postgres exited ${code} during start: ${log.slice(-3000)}`))),
    );
    exited.catch(() => undefined);
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const ok = await Promise.race([canConnect(host, port), exited]);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within ${START_TIMEOUT_MS} ms: ${log.slice(-3000)}`);
      await sleep(100);
    }
  };
  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const done = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    process.kill(c.pid!, signal);
    const timer = setTimeout(() => {
      if (c.exitCode === null && c.signalCode === null) process.kill(c.pid!, 'SIGKILL');
    }, STOP_TIMEOUT_MS);
    await done;
    clearTimeout(timer);
  };

  try {
    await launch();
  } catch (err) {
    await waitExit('SIGKILL');
    if (base) rmSync(base, { recursive: true, force: true });
    throw err;
  }

  const query = async <R extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]> => {
    const client = new pg.Client({ host, port, user: PG_SUPERUSER, database: 'postgres' });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as R[];
    } finally {
      await client.end();
    }
  };

  return {
    port,
    host,
    dataDir,
    get pid() {
      return child?.pid ?? -1;
    },
    query,
    async pgbench(args: string[]): Promise<string> {
      return await new Promise((resolve, reject) => {
        const p = spawn(join(PG_BIN, 'pgbench'), ['-h', host, '-p', String(port), '-U', PG_SUPERUSER, ...args, 'postgres'], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { PATH: process.env.PATH, LANG: 'C' },
        });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        p.on('error', reject);
        p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`pgbench ${args.join(' ')} exited ${code}: ${out.slice(-2000)}`))));
      });
    },
    async kill(): Promise<void> {
      // The backends outlive a SIGKILLed postmaster until they notice, and
      // hold its shared memory meanwhile: a restart before they are gone
      // fails ("pre-existing shared memory block is still in use").
      const orphans = child?.pid === undefined ? [] : descendants(child.pid);
      await waitExit('SIGKILL');
      await waitGone(orphans, STOP_TIMEOUT_MS);
    },
    async restart(): Promise<void> {
      await waitExit('SIGINT');
      await launch();
    },
    async promote(): Promise<void> {
      await query('SELECT pg_promote(true, 60)');
    },
    async stop(): Promise<void> {
      await waitExit('SIGINT');
      if (base) rmSync(base, { recursive: true, force: true });
    },
  };
}

/** Pids of every live descendant of pid, from /proc. */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Field 4 of stat, after the parenthesised command (which may hold spaces).
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // Exited while we looked.
    }
  }
  const found: number[] = [];
  const frontier = [pid];
  while (frontier.length > 0) {
    const p = frontier.pop()!;
    for (const [c, pp] of parentOf) {
      if (pp === p) {
        found.push(c);
        frontier.push(c);
      }
    }
  }
  return found;
}

/** Wait until none of pids is alive; SIGKILL those left after timeoutMs. */
async function waitGone(pids: number[], timeoutMs: number): Promise<void> {
  const alive = (): number[] => pids.filter((p) => existsSync(`/proc/${p}`) && !readFileSafe(`/proc/${p}/stat`).includes(') Z '));
  const deadline = Date.now() + timeoutMs;
  while (alive().length > 0) {
    if (Date.now() > deadline) {
      for (const p of alive()) process.kill(p, 'SIGKILL');
      await sleep(200);
      return;
    }
    await sleep(50);
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

async function canConnect(host: string, port: number): Promise<boolean> {
  const client = new pg.Client({ host, port, user: PG_SUPERUSER, database: 'postgres', connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}
