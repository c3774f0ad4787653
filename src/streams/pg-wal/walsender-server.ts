// A walsender-compatible endpoint: speaks the PostgreSQL protocol v3 as a
// server, so a real standby whose primary_conninfo points here streams and
// replays WAL from the spool. Per connection: STARTUP -> AUTHENTICATING ->
// IDLE (commands) -> STREAMING (CopyBoth) -> IDLE ... An unknown command or
// a malformed message gets an ErrorResponse and the connection is closed;
// other connections are unaffected.
//
// Before authentication a client is a stranger: connections are capped
// (all, and those not yet authenticated), startup and authentication must
// end within a timeout, messages and buffered bytes are small, and SCRAM
// costs the same for a known and an unknown user name, with no PBKDF2 on
// the event loop (see scram.ts).

import { randomBytes, randomInt } from 'node:crypto';
import { BlockList, createServer, isIPv6, type Server, type Socket } from 'node:net';
import { formatLsn, parseHistory, parseLsn, pgTimestampMicros } from './lsn.ts';
import {
  BodyReader,
  BodyWriter,
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MessageSocket,
  PROTOCOL_3,
  ProtocolError,
  SSL_REQUEST_CODE,
  TYPE_OID,
  authentication,
  backendKeyData,
  commandComplete,
  copyBothResponse,
  copyData,
  copyDone,
  dataRow,
  errorResponse,
  message,
  parameterStatus,
  readyForQuery,
  rowDescription,
  type PgMessage,
} from './pg-protocol.ts';
import { SCRAM_MECHANISM, ScramServer, mockScramSecret, scramSecret, type ScramSecret } from './scram.ts';
import { WalSpoolReader, type SpoolState } from './wal-spool.ts';

/** Largest message accepted from an authenticated client, bytes. */
const MAX_CLIENT_MESSAGE_BYTES = 1024 * 1024;
/** Unread bytes buffered for an authenticated client before its socket pauses. */
const CLIENT_HIGH_WATER_BYTES = 1024 * 1024;
/** Largest message before authentication, bytes (PostgreSQL's MAX_STARTUP_PACKET_LENGTH). */
const MAX_UNAUTHENTICATED_MESSAGE_BYTES = 10_000;
/** Unread bytes buffered before authentication before the socket pauses. */
const UNAUTHENTICATED_HIGH_WATER_BYTES = 16 * 1024;
/** Default cap on client connections. */
export const DEFAULT_MAX_CONNECTIONS = 32;
/** Default cap on connections in startup or authentication. */
export const DEFAULT_MAX_UNAUTHENTICATED = 8;
/** Default time from connect to the end of authentication, ms. */
export const DEFAULT_AUTH_TIMEOUT_MS = 10_000;
/** Refusals are logged at most this often (with a count of the ones in between), ms. */
const REFUSAL_LOG_INTERVAL_MS = 1_000;
/** SQLSTATE too_many_connections. */
const TOO_MANY_CONNECTIONS = '53300';
/** WAL page size (PostgreSQL's XLOG_BLCKSZ), bytes. */
export const WAL_PAGE_BYTES = 8192;
/** Largest XLogData payload (PostgreSQL's MAX_SEND_SIZE: 16 pages), bytes. */
export const MAX_SEND_BYTES = 16 * WAL_PAGE_BYTES;
/** Keepalive interval while streaming, ms. */
const KEEPALIVE_INTERVAL_MS = 10_000;

/** A pino-compatible logger (only what this file uses). */
export interface WalsenderLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
}

/** Options of the walsender endpoint. */
export interface WalsenderServerOptions {
  /** The spool to serve, or its directory. */
  spool: WalSpoolReader | string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  auth: {
    /** user -> password, checked with SCRAM-SHA-256. */
    users: Record<string, string>;
    /** Client addresses (CIDR, e.g. "127.0.0.1/32") let in without a password. */
    trustCidrs: string[];
  };
  /** Most client connections at once (default DEFAULT_MAX_CONNECTIONS). */
  maxConnections?: number;
  /** Most connections in startup or authentication at once (default DEFAULT_MAX_UNAUTHENTICATED). */
  maxUnauthenticated?: number;
  /** Time from connect to the end of authentication, ms (default DEFAULT_AUTH_TIMEOUT_MS). */
  authTimeoutMs?: number;
  logger?: WalsenderLogger;
}

/** A running endpoint. */
export interface WalsenderServer {
  port: number;
  close(): Promise<void>;
}

/** What a standby last reported (exposed for tests and metrics). */
export interface StandbyStatus {
  writeLsn: number;
  flushLsn: number;
  applyLsn: number;
}

/** An error sent to the client as ErrorResponse, after which the connection closes. */
class ClientError extends Error {
  readonly code: string;
  readonly severity: 'ERROR' | 'FATAL';

  constructor(code: string, text: string, severity: 'ERROR' | 'FATAL' = 'ERROR') {
    super(text);
    this.code = code;
    this.severity = severity;
  }
}

/** Start the endpoint; resolves once it listens. */
export async function startWalsenderServer(options: WalsenderServerOptions): Promise<WalsenderServer & { standbys: Map<Socket, StandbyStatus> }> {
  const spool = typeof options.spool === 'string' ? new WalSpoolReader(options.spool) : options.spool;
  const trust = compileCidrs(options.auth.trustCidrs);
  // Each configured user's SCRAM secret once, off the event loop.
  const secrets = new Map<string, ScramSecret>();
  for (const [user, password] of Object.entries(options.auth.users)) secrets.set(user, await scramSecret(password));
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const maxUnauthenticated = options.maxUnauthenticated ?? DEFAULT_MAX_UNAUTHENTICATED;
  const sockets = new Set<Socket>();
  const standbys = new Map<Socket, StandbyStatus>();
  const context: ConnectionContext = {
    spool,
    trust,
    secrets,
    mockKey: randomBytes(32),
    authTimeoutMs: options.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS,
    unauthenticated: new Set(),
    logger: options.logger,
    standbys,
  };
  const refusals = refusalLog(options.logger);

  const server: Server = createServer((socket) => {
    // Over a cap: PostgreSQL's "too many clients" error, then close.
    const full = sockets.size >= maxConnections
      ? `too many connections (maxConnections ${maxConnections})`
      : context.unauthenticated.size >= maxUnauthenticated
        ? `too many connections still authenticating (maxUnauthenticated ${maxUnauthenticated})`
        : undefined;
    if (full) {
      refusals(socket.remoteAddress ?? '', full);
      socket.on('error', () => undefined);
      socket.end(errorResponse('FATAL', TOO_MANY_CONNECTIONS, `sorry, ${full}`));
      socket.destroySoon();
      return;
    }
    sockets.add(socket);
    context.unauthenticated.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => {
      sockets.delete(socket);
      context.unauthenticated.delete(socket);
      standbys.delete(socket);
    });
    void serveConnection(socket, context);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    port,
    standbys,
    async close(): Promise<void> {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

function compileCidrs(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [addr, bits] = cidr.split('/');
    const type = isIPv6(addr) ? 'ipv6' : 'ipv4';
    const prefix = bits === undefined ? (type === 'ipv6' ? 128 : 32) : Number(bits);
    if (!Number.isInteger(prefix)) throw new Error(`walsender auth.trustCidrs: invalid CIDR "${cidr}"`);
    list.addSubnet(addr, prefix, type);
  }
  return list;
}

/** Logs refused connections, at most once per REFUSAL_LOG_INTERVAL_MS with the count in between. */
function refusalLog(logger: WalsenderLogger | undefined): (remote: string, reason: string) => void {
  let lastMs = 0;
  let suppressed = 0;
  return (remote, reason) => {
    const now = Date.now();
    if (now - lastMs < REFUSAL_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    logger?.warn({ remote, reason, code: TOO_MANY_CONNECTIONS, suppressed }, 'walsender connection refused');
    lastMs = now;
    suppressed = 0;
  };
}

interface ConnectionContext {
  spool: WalSpoolReader;
  trust: BlockList;
  secrets: Map<string, ScramSecret>;
  /** Key of the stand-in secrets of unknown users (per process). */
  mockKey: Buffer;
  authTimeoutMs: number;
  /** Connections not yet past authentication. */
  unauthenticated: Set<Socket>;
  logger?: WalsenderLogger;
  standbys: Map<Socket, StandbyStatus>;
}

async function serveConnection(socket: Socket, ctx: ConnectionContext): Promise<void> {
  // Small messages and little buffering until the client authenticated.
  const conn = new MessageSocket(socket, { startup: true, maxLength: MAX_UNAUTHENTICATED_MESSAGE_BYTES, highWaterBytes: UNAUTHENTICATED_HIGH_WATER_BYTES });
  const remote = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  const authTimer = setTimeout(() => {
    ctx.logger?.warn({ remote, timeoutMs: ctx.authTimeoutMs }, 'walsender client did not authenticate in time; closed');
    socket.destroy();
  }, ctx.authTimeoutMs);
  authTimer.unref();
  try {
    const params = await startup(conn);
    if (!params) return;
    await authenticate(conn, params.user, remote, ctx);
    clearTimeout(authTimer);
    ctx.unauthenticated.delete(socket);
    conn.setLimits({ maxLength: MAX_CLIENT_MESSAGE_BYTES, highWaterBytes: CLIENT_HIGH_WATER_BYTES });
    await greet(conn, params, ctx);
    ctx.logger?.info({ remote, user: params.user, application: params.application_name }, 'walsender client connected');
    await commandLoop(conn, ctx);
  } catch (err) {
    const e = err instanceof ClientError
      ? err
      : err instanceof ProtocolError
        ? new ClientError('08P01', `invalid frontend message: ${err.message}`, 'FATAL')
        : new ClientError('XX000', `walsender: ${(err as Error).message}`, 'FATAL');
    ctx.logger?.warn({ remote, code: e.code, err: e.message }, 'walsender client refused');
    if (!socket.destroyed) socket.write(errorResponse(e.severity, e.code, e.message));
  } finally {
    clearTimeout(authTimer);
    socket.end();
    socket.destroySoon();
  }
}

/** Read the startup message, answering SSL/GSS requests with 'N'. */
async function startup(conn: MessageSocket): Promise<Record<string, string> | undefined> {
  for (;;) {
    const m = await conn.read();
    if (!m) return undefined;
    const r = new BodyReader(m.body);
    const code = r.int32();
    if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
      conn.decoder.expectStartup();
      await conn.write(Buffer.from('N'));
      conn.redecode();
      continue;
    }
    if (code === CANCEL_REQUEST_CODE) return undefined;
    if (code !== PROTOCOL_3) {
      throw new ClientError('08P01', `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}`, 'FATAL');
    }
    const params: Record<string, string> = {};
    while (r.remaining > 1) params[r.cstring()] = r.cstring();
    if (!params.user) throw new ClientError('28000', 'no PostgreSQL user name specified in startup packet', 'FATAL');
    const replication = (params.replication ?? '').toLowerCase();
    if (!['true', 'on', 'yes', '1', 'database'].includes(replication)) {
      throw new ClientError('28000', 'this endpoint only serves replication connections (replication=true)', 'FATAL');
    }
    return params;
  }
}

/** Trust for configured addresses, else SCRAM-SHA-256 against the configured password. */
async function authenticate(conn: MessageSocket, user: string, remote: string, ctx: ConnectionContext): Promise<void> {
  const family = isIPv6(remote) ? 'ipv6' : 'ipv4';
  if (remote && ctx.trust.check(remote, family)) {
    await conn.write(authentication(0));
    return;
  }
  const failed = new ClientError('28P01', `password authentication failed for user "${user}"`, 'FATAL');
  // An unknown user goes through the same exchange, with a stand-in secret that costs what a real one does.
  const secret = ctx.secrets.get(user) ?? mockScramSecret(ctx.mockKey, user);
  await conn.write(authentication(10, Buffer.from(`${SCRAM_MECHANISM}\0\0`)));
  const initial = await expectMessage(conn, 'p');
  const r = new BodyReader(initial.body);
  const mechanism = r.cstring();
  if (mechanism !== SCRAM_MECHANISM) throw new ClientError('28000', `unsupported SASL mechanism "${mechanism}"`, 'FATAL');
  const len = r.int32();
  const scram = new ScramServer(secret);
  let serverFirst: string;
  try {
    serverFirst = scram.first(r.bytes(Math.max(0, len)).toString('utf8'));
  } catch (err) {
    throw new ClientError('08P01', `malformed SCRAM message: ${(err as Error).message}`, 'FATAL');
  }
  await conn.write(authentication(11, Buffer.from(serverFirst)));
  const response = await expectMessage(conn, 'p');
  let serverFinal: string;
  try {
    serverFinal = scram.final(response.body.toString('utf8'));
  } catch {
    throw failed;
  }
  if (!ctx.secrets.has(user)) throw failed;
  await conn.write(authentication(12, Buffer.from(serverFinal)));
  await conn.write(authentication(0));
}

async function expectMessage(conn: MessageSocket, type: string): Promise<PgMessage> {
  const m = await conn.read();
  if (!m) throw new ClientError('08006', 'client closed the connection', 'FATAL');
  if (m.type !== type) throw new ClientError('08P01', `expected message "${type}", got "${m.type}"`, 'FATAL');
  return m;
}

/** ParameterStatus, BackendKeyData, ReadyForQuery. */
async function greet(conn: MessageSocket, params: Record<string, string>, ctx: ConnectionContext): Promise<void> {
  const state = await ctx.spool.state();
  const version = state?.serverVersion ? versionString(state.serverVersion) : '15.0';
  const statuses: [string, string][] = [
    ['server_version', `${version} (dwcp walsender)`],
    ['server_encoding', 'UTF8'],
    ['client_encoding', 'UTF8'],
    ['application_name', params.application_name ?? ''],
    ['DateStyle', 'ISO, MDY'],
    ['IntervalStyle', 'postgres'],
    ['integer_datetimes', 'on'],
    ['standard_conforming_strings', 'on'],
    ['TimeZone', 'UTC'],
    ['is_superuser', 'off'],
    ['session_authorization', params.user],
    ['in_hot_standby', 'off'],
  ];
  const out = statuses.map(([k, v]) => parameterStatus(k, v));
  out.push(backendKeyData(randomInt(1, 2 ** 31 - 1), randomInt(0, 2 ** 31 - 1)), readyForQuery());
  await conn.write(Buffer.concat(out));
}

function versionString(num: number): string {
  return `${Math.floor(num / 10000)}.${num % 100}`;
}

/** Serve simple-query commands until the client terminates. */
async function commandLoop(conn: MessageSocket, ctx: ConnectionContext): Promise<void> {
  for (;;) {
    const m = await conn.read();
    if (!m || m.type === 'X') return;
    if (m.type !== 'Q') throw new ClientError('08P01', `unexpected message type "${m.type}" (only simple queries are served)`, 'FATAL');
    const sql = new BodyReader(m.body).cstring().trim().replace(/;\s*$/, '');
    await runCommand(conn, ctx, sql);
  }
}

const START_REPLICATION_RE =
  /^START_REPLICATION(?:\s+SLOT\s+"?[A-Za-z0-9_]+"?)?(?:\s+PHYSICAL)?\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})(?:\s+TIMELINE\s+(\d+))?$/i;

async function runCommand(conn: MessageSocket, ctx: ConnectionContext, sql: string): Promise<void> {
  if (sql === '') {
    await conn.write(Buffer.concat([message('I'), readyForQuery()]));
    return;
  }
  if (/^IDENTIFY_SYSTEM$/i.test(sql)) {
    const state = await requireState(ctx);
    await conn.write(Buffer.concat([
      rowDescription([
        { name: 'systemid', typeOid: TYPE_OID.text },
        { name: 'timeline', typeOid: TYPE_OID.int4 },
        { name: 'xlogpos', typeOid: TYPE_OID.text },
        { name: 'dbname', typeOid: TYPE_OID.text },
      ]),
      dataRow([state.systemId, String(state.timeline), formatLsn(state.flushLsn), null]),
      commandComplete('IDENTIFY_SYSTEM'),
      readyForQuery(),
    ]));
    return;
  }
  const history = /^TIMELINE_HISTORY\s+(\d+)$/i.exec(sql);
  if (history) {
    const tli = Number(history[1]);
    const content = await ctx.spool.history(tli);
    if (!content) throw new ClientError('58P01', `could not open file "pg_wal/${tli.toString(16).toUpperCase().padStart(8, '0')}.history": No such file or directory`);
    await conn.write(Buffer.concat([
      rowDescription([{ name: 'filename', typeOid: TYPE_OID.text }, { name: 'content', typeOid: TYPE_OID.text }]),
      dataRow([`${tli.toString(16).toUpperCase().padStart(8, '0')}.history`, content]),
      commandComplete('TIMELINE_HISTORY'),
      readyForQuery(),
    ]));
    return;
  }
  const show = /^SHOW\s+([A-Za-z_]+)$/i.exec(sql);
  if (show) {
    const state = await ctx.spool.state();
    const name = show[1].toLowerCase();
    const values: Record<string, string> = {
      wal_segment_size: `${Math.round((state?.walSegmentSize ?? 16 * 1024 * 1024) / (1024 * 1024))}MB`,
      server_version: state?.serverVersion ? versionString(state.serverVersion) : '15.0',
      server_version_num: String(state?.serverVersion || 150000),
      integer_datetimes: 'on',
      data_directory_mode: '0700',
    };
    // Own keys only: "SHOW constructor" must not find Object.prototype's.
    const value = Object.hasOwn(values, name) ? values[name] : undefined;
    if (value === undefined) throw new ClientError('42704', `unrecognized configuration parameter "${show[1]}"`);
    await conn.write(Buffer.concat([
      rowDescription([{ name, typeOid: TYPE_OID.text }]),
      dataRow([value]),
      commandComplete('SHOW'),
      readyForQuery(),
    ]));
    return;
  }
  const readSlot = /^READ_REPLICATION_SLOT\s+"?[A-Za-z0-9_]+"?$/i.exec(sql);
  if (readSlot) {
    // Every slot name reads as a physical slot holding the whole spool, so a
    // WalSource can relay from this endpoint (agent -> agent cascading).
    const state = await requireState(ctx);
    await conn.write(Buffer.concat([
      rowDescription([
        { name: 'slot_type', typeOid: TYPE_OID.text },
        { name: 'restart_lsn', typeOid: TYPE_OID.text },
        { name: 'restart_tli', typeOid: TYPE_OID.int8 },
      ]),
      dataRow(['physical', formatLsn(state.startLsn), String(await timelineAt(ctx, state, state.startLsn))]),
      commandComplete('READ_REPLICATION_SLOT'),
      readyForQuery(),
    ]));
    return;
  }
  const start = START_REPLICATION_RE.exec(sql);
  if (start) {
    await startReplication(conn, ctx, parseLsn(start[1]), start[2] === undefined ? undefined : Number(start[2]));
    return;
  }
  throw new ClientError('42601', `syntax error: unknown replication command "${sql.slice(0, 64)}"`);
}

/**
 * Where one XLogData message starting at pos ends, given WAL available up
 * to available: there, if it is within MAX_SEND_BYTES and the segment,
 * else at the last page boundary before the cut. available is a point the
 * primary itself stopped at (the committed end is the end of a batch of
 * whole XLogData messages, see wal-source.ts) or a timeline switch, so
 * every message ends at a record end or a page boundary, as PostgreSQL's
 * walsender does (XLogSendPhysical rounds a cut down to a page boundary).
 * Why it matters: a standby's startup process reads a record that spans
 * pages by copying the rest of its first page from a buffer read when the
 * record header was all the walreceiver had flushed (xlogreader.c, "Copy
 * the first fragment of the record from the first page"); a message ending
 * mid-page inside such a record makes it copy bytes not yet written, and
 * the record fails its CRC ("incorrect resource manager data checksum"),
 * which restarts the walreceiver (issue 9 item 5).
 */
export function sendEnd(pos: number, available: number, walSegmentSize: number): number {
  const segmentEnd = (Math.floor(pos / walSegmentSize) + 1) * walSegmentSize;
  const end = Math.min(available, segmentEnd);
  if (end - pos <= MAX_SEND_BYTES) return end;
  const cut = pos + MAX_SEND_BYTES;
  return cut - (cut % WAL_PAGE_BYTES);
}

/**
 * XLogData messages whose WAL is read from the spool in one call: 512 KiB
 * at MAX_SEND_BYTES each, the size of the frames a catch-up arrives in.
 */
const MESSAGES_PER_READ = 4;

/**
 * Lengths of up to count consecutive XLogData messages from pos, as
 * sendEnd cuts them, all within pos's segment (one read covers them).
 */
export function sendLengths(pos: number, available: number, walSegmentSize: number, count: number): number[] {
  const segmentEnd = (Math.floor(pos / walSegmentSize) + 1) * walSegmentSize;
  const lengths: number[] = [];
  for (let at = pos; at < Math.min(available, segmentEnd) && lengths.length < count; ) {
    const upTo = sendEnd(at, available, walSegmentSize);
    lengths.push(upTo - at);
    at = upTo;
  }
  return lengths;
}

/** CopyData header (type, length) plus XLogData's ('w', start, server WAL end, server time): bytes before the WAL. */
const XLOG_DATA_HEADER_BYTES = 5 + 1 + 8 + 8 + 8;

/** Fill the headers of a CopyData(XLogData) message whose WAL already sits after XLOG_DATA_HEADER_BYTES. */
function writeXLogDataHeader(message: Buffer, start: number, walEnd: number, timeMicros: number): void {
  message[0] = 0x64; // 'd'
  message.writeUInt32BE(message.length - 1, 1);
  message[5] = 0x77; // 'w'
  message.writeBigUInt64BE(BigInt(start), 6);
  message.writeBigUInt64BE(BigInt(walEnd), 14);
  message.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(timeMicros))), 22);
}

/** The timeline that WAL at lsn belongs to, per the latest timeline's history. */
async function timelineAt(ctx: ConnectionContext, state: SpoolState, lsn: number): Promise<number> {
  const hist = await ctx.spool.history(state.timeline);
  if (!hist) return state.timeline;
  const owner = parseHistory(hist.toString('utf8')).find((s) => lsn < s.switchLsn);
  return owner?.timeline ?? state.timeline;
}

async function requireState(ctx: ConnectionContext): Promise<SpoolState> {
  const state = await ctx.spool.state();
  if (!state) throw new ClientError('55000', 'the spool holds no WAL yet');
  return state;
}

/** START_REPLICATION: stream from startLsn on timeline, as the real walsender does. */
async function startReplication(conn: MessageSocket, ctx: ConnectionContext, startLsn: number, requestedTli?: number): Promise<void> {
  let state = await requireState(ctx);
  const timeline = requestedTli ?? state.timeline;
  let span = await ctx.spool.timelineEnd(state, timeline);
  if (!span) throw new ClientError('55000', `requested timeline ${timeline} is not in this server's history`);
  if (startLsn < state.startLsn) {
    throw new ClientError('58P01', `requested WAL segment at ${formatLsn(startLsn)} has already been removed (spool starts at ${formatLsn(state.startLsn)})`);
  }
  if (span.next !== undefined && startLsn > span.end) {
    throw new ClientError('55000', `requested starting point ${formatLsn(startLsn)} on timeline ${timeline} is not in this server's history`);
  }
  if (span.next === undefined && startLsn > state.flushLsn) {
    throw new ClientError('55000', `requested starting point ${formatLsn(startLsn)} is ahead of the WAL flush position of this server ${formatLsn(state.flushLsn)}`);
  }

  if (span.next === undefined || startLsn < span.end) {
    await conn.write(copyBothResponse());
    const status: StandbyStatus = { writeLsn: 0, flushLsn: 0, applyLsn: 0 };
    ctx.standbys.set(conn.socket, status);
    const stop = new AbortController();
    let clientDone = false;
    // Reader: standby status updates, hot-standby feedback, CopyDone.
    const reading = (async () => {
      for (;;) {
        const m = await conn.read();
        if (!m || m.type === 'X') throw new ClientError('08006', 'client closed the connection during streaming', 'FATAL');
        if (m.type === 'c') {
          clientDone = true;
          stop.abort();
          return;
        }
        if (m.type !== 'd') throw new ClientError('08P01', `unexpected message type "${m.type}" during streaming`, 'FATAL');
        const r = new BodyReader(m.body);
        const kind = String.fromCharCode(r.byte());
        if (kind === 'r') {
          status.writeLsn = r.uint64();
          status.flushLsn = r.uint64();
          status.applyLsn = r.uint64();
        } else if (kind !== 'h') {
          throw new ClientError('08P01', `unexpected standby message type "${kind}"`, 'FATAL');
        }
      }
    })();
    reading.catch(() => stop.abort());

    // Sender: XLogData up to the durable end, keepalives while idle.
    let pos = startLsn;
    let lastSend = Date.now();
    const cursor = ctx.spool.cursor();
    try {
      while (!stop.signal.aborted) {
        if (span.next !== undefined && pos >= span.end) break;
        const end = span.next !== undefined ? span.end : state.flushLsn;
        if (pos < end) {
          // The next messages' WAL is read in one call, each after room for its headers, written in place.
          const lengths = sendLengths(pos, end, state.walSegmentSize, MESSAGES_PER_READ);
          const messages = await cursor.readPieces(state, timeline, pos, end, lengths, XLOG_DATA_HEADER_BYTES);
          const now = pgTimestampMicros();
          for (const message of messages) {
            // The standby's CopyDone ends the stream between messages, as before.
            if (stop.signal.aborted) break;
            writeXLogDataHeader(message, pos, state.flushLsn, now);
            await conn.write(message);
            pos += message.length - XLOG_DATA_HEADER_BYTES;
          }
          lastSend = Date.now();
          continue;
        }
        if (Date.now() - lastSend >= KEEPALIVE_INTERVAL_MS) {
          await conn.write(copyData(new BodyWriter().byte(0x6b).uint64(state.flushLsn).uint64(pgTimestampMicros()).byte(0).build()));
          lastSend = Date.now();
        }
        const next = await ctx.spool.waitForMore(pos, KEEPALIVE_INTERVAL_MS, stop.signal);
        if (next) state = next;
        if (state.timeline !== timeline) span = (await ctx.spool.timelineEnd(state, timeline)) ?? span;
      }
    } catch (err) {
      stop.abort();
      throw err;
    } finally {
      await cursor.close();
    }
    if (!clientDone) {
      // Our side of the copy ended (end of timeline) or the reader failed.
      if (stop.signal.aborted) await reading; // rethrows the reader's error
      await conn.write(copyDone());
      await reading; // wait for the standby's CopyDone
    } else {
      await conn.write(copyDone());
    }
    ctx.standbys.delete(conn.socket);
  }

  const out: Buffer[] = [];
  if (span.next !== undefined) {
    out.push(
      rowDescription([{ name: 'next_tli', typeOid: TYPE_OID.int8 }, { name: 'next_tli_startpos', typeOid: TYPE_OID.text }]),
      dataRow([String(span.next), formatLsn(span.end)]),
    );
  }
  out.push(commandComplete('START_STREAMING'), readyForQuery());
  await conn.write(Buffer.concat(out));
}
