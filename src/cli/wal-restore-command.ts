// `dwcp wal-restore %f %p`: PostgreSQL's restore_command backed by an
// agent's WAL spool, as a thin client of the agent's HTTP endpoint
// (GET /wal/<stream>/<file>, see wal-file-server.ts): --url names it, with
// a walsender user (--user, and the password in --password-file or
// DWCP_WAL_PASSWORD); --config FILE (+ --stream ID when several pg-wal
// streams land in this region) takes URL and user from the agent's config.
// --spool DIR reads a spool directory directly (an agent that is down).
// Exit codes follow restore_command's contract: 0 the file was restored, 1
// it is not there (recovery goes on streaming or ends), 2 usage.

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load-config.ts';
import type { PgWalDestinationConfig } from '../config/config.ts';
import { WAL_FILE_PATH_PREFIX } from '../streams/pg-wal/wal-file-server.ts';
import { WalFileMissingError, walFetch, walRestore, type WalFetchAuth } from '../streams/pg-wal/wal-restore.ts';

/** Exit codes of wal-restore. */
export const WAL_RESTORE_OK = 0;
export const WAL_RESTORE_MISSING = 1;
export const WAL_RESTORE_USAGE = 2;

/** Environment variable holding the walsender user's password for --url. */
const PASSWORD_ENV = 'DWCP_WAL_PASSWORD';

const USAGE = `Usage: dwcp wal-restore (--url URL --user USER [--password-file FILE] | --config FILE [--stream ID] | --spool DIR) WALFILE TARGET

Fetches WALFILE (a complete segment or a history file) from the agent that
spools the stream and installs it at TARGET, atomically.
  --url URL        the agent's WAL endpoint, http://AGENT:9464/wal/STREAM; the
                   password of --user (a walsender user) is read from
                   --password-file or ${PASSWORD_ENV}
  --config FILE    the agent's config: URL and user from it (same host)
  --spool DIR      read a spool directory directly (when the agent is down)
For postgresql.conf (curl does the same without Node):
  restore_command = 'curl -sfo %p -u standby:PASSWORD http://AGENT:9464/wal/STREAM/%f'
  restore_command = 'dwcp wal-restore --url http://AGENT:9464/wal/STREAM --user standby --password-file /etc/dwcp/wal-password %f %p'
Exit 0 when restored, 1 when the agent does not have it (or not committed yet), 2 on bad usage.
`;

/** This region's destination of a pg-wal stream in the config file. */
async function destinationFromConfig(configPath: string, streamId: string | undefined): Promise<{ stream: string; dest: PgWalDestinationConfig; httpHost: string; httpPort: number }> {
  const config = await loadConfig(configPath);
  const here = config.streams
    .filter((s) => s.kind === 'pg-wal' && (streamId === undefined || s.id === streamId))
    .flatMap((s) => s.destinations.filter((d) => d.region === config.region).map((d) => ({ stream: s.id, dest: d as PgWalDestinationConfig })));
  if (here.length === 0) {
    throw new Error(`wal-restore: ${configPath}: no pg-wal stream${streamId ? ` "${streamId}"` : ''} has a destination in region ${config.region}`);
  }
  if (here.length > 1) {
    throw new Error(`wal-restore: ${configPath}: several pg-wal streams land in ${config.region} (${here.map((h) => h.stream).join(', ')}); pick one with --stream`);
  }
  return { ...here[0], httpHost: config.http.host, httpPort: config.http.port };
}

/** URL and credentials of the agent's WAL endpoint, from the config (same host). */
async function endpointFromConfig(configPath: string, streamId: string | undefined): Promise<{ url: string; auth: WalFetchAuth }> {
  const { stream, dest, httpHost, httpPort } = await destinationFromConfig(configPath, streamId);
  const [user, password] = Object.entries(dest.walsender.users)[0] ?? [];
  if (user === undefined) throw new Error(`wal-restore: ${configPath}: stream "${stream}" has no walsender.users to fetch WAL with`);
  const host = httpHost === '0.0.0.0' || httpHost === '::' ? '127.0.0.1' : httpHost.includes(':') ? `[${httpHost}]` : httpHost;
  return { url: `http://${host}:${httpPort}${WAL_FILE_PATH_PREFIX}${encodeURIComponent(stream)}`, auth: { user, password } };
}

/** Entry point of `dwcp wal-restore`; returns the exit code. */
export async function walRestoreCommand(args: string[], err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        user: { type: 'string' },
        'password-file': { type: 'string' },
        spool: { type: 'string' },
        config: { type: 'string', short: 'c' },
        stream: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    err.write(`dwcp wal-restore: ${(e as Error).message}\n\n${USAGE}`);
    return WAL_RESTORE_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return WAL_RESTORE_OK;
  }
  const modes = [values.url, values.config, values.spool].filter((v) => v !== undefined).length;
  if (positionals.length !== 2 || modes !== 1 || (values.url !== undefined && values.user === undefined)) {
    err.write(`dwcp wal-restore: give WALFILE and TARGET, and exactly one of --url (with --user), --config or --spool\n\n${USAGE}`);
    return WAL_RESTORE_USAGE;
  }
  const [fileName, target] = positionals;
  try {
    if (values.spool !== undefined) {
      await walRestore(values.spool, fileName, target);
    } else if (values.config !== undefined) {
      const { url, auth } = await endpointFromConfig(values.config, values.stream);
      await walFetch(url, fileName, target, auth);
    } else {
      const password = values['password-file'] !== undefined
        ? (await readFile(values['password-file'], 'utf8')).replace(/\r?\n$/, '')
        : process.env[PASSWORD_ENV];
      if (password === undefined) throw new Error(`wal-restore: no password for --user ${values.user}: give --password-file or set ${PASSWORD_ENV}`);
      await walFetch(values.url!, fileName, target, { user: values.user!, password });
    }
    return WAL_RESTORE_OK;
  } catch (e) {
    // Missing is routine during recovery (PostgreSQL probes ahead). Other
    // failures (config, network, I/O) also exit 1: a status over 125 would
    // abort the standby's recovery, and streaming may still deliver the WAL.
    const message = (e as Error).message;
    err.write(e instanceof WalFileMissingError || message.startsWith('wal-restore:') ? `dwcp ${message}\n` : `dwcp wal-restore: ${message}\n`);
    return WAL_RESTORE_MISSING;
  }
}
