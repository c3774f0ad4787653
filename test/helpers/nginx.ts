// A real nginx (Debian's nginx-light) as an L7 reverse proxy for WebSocket
// carriers: it terminates the hop's TLS with its own certificate and passes
// the upgrade on to an agent's HTTPS WebSocket listener. It runs as a child
// process of the test (no daemon), unprivileged (as dwcp-test when the test
// runs as root), with its config, pid, logs and temp paths in its own
// directory, listening on loopback.

import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chown, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { waitFor } from './agent-process.ts';

/** Where Debian installs nginx. */
const NGINX = '/usr/sbin/nginx';
/** The unprivileged user it runs as when the test runs as root. */
const RUN_AS = 'dwcp-test';
/** Time nginx has to start listening, ms. */
const START_TIMEOUT_MS = 10_000;

/** What the proxy forwards. */
export interface NginxProxyOptions {
  /** Loopback port nginx listens on (HTTPS). */
  port: number;
  /** Path of the WebSocket location (the agents' listenWs.path). */
  path: string;
  /** The agent's WebSocket listener (HTTPS) the upgrade goes to. */
  backendPort: number;
  /** nginx's own certificate and key for the hop (PEM files), and the CA that verifies the backend. */
  certFile: string;
  keyFile: string;
  backendCaFile: string;
  /** Name nginx checks the backend certificate for (its CN: agents are named by a URI SAN, not DNS). */
  backendName: string;
  /** Address nginx listens on (default 127.0.0.1). */
  listenHost?: string;
  /**
   * Spawn nginx elsewhere (a lab namespace: `(cmd, args, o) => lab.exec(ns, cmd, args, o)`);
   * it then drops to the unprivileged user with setpriv, and readiness is its pid file.
   */
  spawnIn?: (cmd: string, args: string[], options: SpawnOptions) => ChildProcess;
}

/** A running nginx. */
export interface NginxProxy {
  readonly dir: string;
  /** Lines of nginx's access log ("GET /dwcp HTTP/1.1" 101 ...). */
  accessLog(): Promise<string[]>;
  /** Stop nginx (fast shutdown: its connections are cut). */
  stop(): Promise<void>;
  /** Start it again with the same config. */
  start(): Promise<void>;
  /** Stop it and remove its directory. */
  close(): Promise<void>;
}

/** Write the config, start nginx, wait until it listens. */
export async function startNginxProxy(options: NginxProxyOptions): Promise<NginxProxy> {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} missing: install nginx-light (scripts/setup.sh does)`);
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-nginx-'));
  for (const sub of ['logs', 'tmp']) await mkdir(join(dir, sub));
  // Its own copies of the PEM files, readable by the user it runs as.
  await copyFile(options.certFile, join(dir, 'proxy.crt'));
  await copyFile(options.keyFile, join(dir, 'proxy.key'));
  await copyFile(options.backendCaFile, join(dir, 'backend-ca.crt'));
  await writeFile(join(dir, 'nginx.conf'), config(dir, options));
  const ids = process.getuid?.() === 0 ? runAsIds() : null;
  if (ids) for (const p of [dir, join(dir, 'logs'), join(dir, 'tmp'), join(dir, 'proxy.crt'), join(dir, 'proxy.key'), join(dir, 'backend-ca.crt'), join(dir, 'nginx.conf')]) await chown(p, ids.uid, ids.gid);

  let child: ChildProcess | null = null;
  let stderr = '';
  const start = async (): Promise<void> => {
    stderr = '';
    const args = ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'logs', 'error.log')];
    const pidFile = join(dir, 'nginx.pid');
    await rm(pidFile, { force: true });
    const proc = options.spawnIn
      ? options.spawnIn(ids ? 'setpriv' : NGINX, ids ? ['--reuid', String(ids.uid), '--regid', String(ids.gid), '--clear-groups', NGINX, ...args] : args, { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(ids ?? {}) });
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child = proc;
    try {
      await waitFor('nginx listening', async () => {
        if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}: ${stderr}${await readFile(join(dir, 'logs', 'error.log'), 'utf8').catch(() => '')}`);
        // In another namespace the port cannot be tried from here: nginx writes its pid file once it listens.
        return options.spawnIn ? existsSync(pidFile) : listening(options.port);
      }, START_TIMEOUT_MS, 50);
    } catch (err) {
      proc.kill('SIGKILL');
      throw err;
    }
  };
  const stop = async (): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    dir,
    accessLog: async () => (await readFile(join(dir, 'logs', 'access.log'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== ''),
    stop,
    start,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// The nginx config: one HTTPS server on loopback, one location passing WebSocket upgrades to the agent over TLS.
function config(dir: string, o: NginxProxyOptions): string {
  const tmp = join(dir, 'tmp');
  return `daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} info;
events { worker_connections 256; }
http {
  access_log ${join(dir, 'logs', 'access.log')};
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  server {
    listen ${o.listenHost ?? '127.0.0.1'}:${o.port} ssl;
    ssl_certificate ${join(dir, 'proxy.crt')};
    ssl_certificate_key ${join(dir, 'proxy.key')};
    location ${o.path} {
      proxy_pass https://127.0.0.1:${o.backendPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_buffering off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${join(dir, 'backend-ca.crt')};
      # The agent's certificate names it by a dwcp:// URI SAN, not a DNS name:
      # nginx checks the chain; who the agent is, the agents check inside.
      proxy_ssl_name ${o.backendName};
      proxy_ssl_server_name off;
    }
  }
}
`;
}

// uid and gid of RUN_AS.
function runAsIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', RUN_AS]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', RUN_AS]).toString().trim());
  return { uid, gid };
}

// True when something accepts TCP connections on the loopback port.
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}
