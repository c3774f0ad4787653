// `dwcp wal-restore %f %p`: PostgreSQL's restore_command backed by an
// agent's WAL spool. The spool is named with --spool DIR, or found from
// --config FILE (+ --stream ID when several pg-wal streams land in this
// region). Exit codes follow restore_command's contract: 0 the file was
// restored, 1 it is not there (recovery goes on streaming or ends), 2 usage.

import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load-config.ts';
import { WalFileMissingError, walRestore } from '../streams/pg-wal/wal-restore.ts';

/** Exit codes of wal-restore. */
export const WAL_RESTORE_OK = 0;
export const WAL_RESTORE_MISSING = 1;
export const WAL_RESTORE_USAGE = 2;

const USAGE = `Usage: dwcp wal-restore [--spool DIR | --config FILE [--stream ID]] WALFILE TARGET

Copies WALFILE (a complete segment or a history file) from the agent's spool
to TARGET, atomically. For postgresql.conf:
  restore_command = 'dwcp wal-restore --config /etc/dwcp/agent.yaml %f %p'
Exit 0 when restored, 1 when the spool does not have it, 2 on bad usage.
`;

/** Where the spool of this region's destination of a pg-wal stream is, per the config file. */
export async function spoolFromConfig(configPath: string, streamId: string | undefined): Promise<string> {
  const config = await loadConfig(configPath);
  const here = config.streams.filter((s) => s.kind === 'pg-wal' && (streamId === undefined || s.id === streamId)).flatMap((s) => s.destinations.filter((d) => d.region === config.region).map((d) => ({ stream: s.id, path: d.path })));
  if (here.length === 0) {
    throw new Error(`wal-restore: ${configPath}: no pg-wal stream${streamId ? ` "${streamId}"` : ''} has a destination in region ${config.region}`);
  }
  if (here.length > 1) {
    throw new Error(`wal-restore: ${configPath}: several pg-wal streams land in ${config.region} (${here.map((h) => h.stream).join(', ')}); pick one with --stream`);
  }
  return here[0].path;
}

/** Entry point of `dwcp wal-restore`; returns the exit code. */
export async function walRestoreCommand(args: string[], err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { spool: { type: 'string' }, config: { type: 'string', short: 'c' }, stream: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (e) {
    err.write(`dwcp wal-restore: ${(e as Error).message}\n\n${USAGE}`);
    return WAL_RESTORE_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return WAL_RESTORE_OK;
  }
  if (positionals.length !== 2 || (values.spool === undefined) === (values.config === undefined)) {
    err.write(`dwcp wal-restore: give WALFILE and TARGET, and exactly one of --spool or --config\n\n${USAGE}`);
    return WAL_RESTORE_USAGE;
  }
  const [fileName, target] = positionals;
  try {
    const spool = values.spool ?? (await spoolFromConfig(values.config!, values.stream));
    await walRestore(spool, fileName, target);
    return WAL_RESTORE_OK;
  } catch (e) {
    // Missing is routine during recovery (PostgreSQL probes ahead). Other
    // failures (config, I/O) also exit 1: a status over 125 would abort the
    // standby's recovery, and streaming may still deliver the WAL.
    const message = (e as Error).message;
    err.write(e instanceof WalFileMissingError || message.startsWith('wal-restore:') ? `dwcp ${message}\n` : `dwcp wal-restore: ${message}\n`);
    return WAL_RESTORE_MISSING;
  }
}
