// A minimal PostgreSQL replication-protocol client: startup with
// replication=true, authentication (trust, cleartext, MD5, SCRAM-SHA-256),
// simple queries, and CopyBoth mode with CopyDone handling. It exists instead
// of `pg` + pg-copy-streams because a timeline switch ends CopyBoth and is
// followed by a result set on the same query, which those cannot surface.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect } from 'node:tls';
import {
  BodyReader,
  BodyWriter,
  MessageSocket,
  message,
  parseDataRow,
  parseErrorFields,
  parseRowDescription,
  query,
  SSL_REQUEST_CODE,
  startupMessage,
  terminate,
  untypedMessage,
  type PgMessage,
} from './pg-protocol.ts';
import { SCRAM_MECHANISM, ScramClient } from './scram.ts';

/** Largest message accepted from the server, bytes. */
const MAX_SERVER_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Time allowed for TCP connect + startup, ms. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * TLS to the server, as libpq's sslmode: disable (plain TCP), require
 * (TLS, server certificate not checked), verify-ca (certificate chains to
 * sslrootcert), verify-full (verify-ca and the host name matches).
 */
export type SslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

/** The sslmode values, in order of strength. */
export const SSL_MODES: readonly SslMode[] = ['disable', 'require', 'verify-ca', 'verify-full'];

/** Where and as whom to connect. */
export interface ReplicationConnectionOptions {
  host: string;
  port: number;
  user: string;
  password?: string;
  /** Set for a database-bound replication connection; physical replication needs none. */
  database?: string;
  applicationName?: string;
  /** Local address to bind (tests use another loopback address). */
  localAddress?: string;
  /** TLS to the server (default disable). */
  sslmode?: SslMode;
  /** CA certificate file (PEM) for verify-ca and verify-full. */
  sslrootcert?: string;
}

/** The server or the options do not allow the TLS that sslmode asks for. */
export class SslModeError extends Error {
  override name = 'SslModeError';
}

/** An ErrorResponse from the server, with its SQLSTATE. */
export class PgError extends Error {
  override name = 'PgError';
  readonly code: string;
  readonly severity: string;

  constructor(severity: string, code: string, text: string) {
    super(text);
    this.code = code;
    this.severity = severity;
  }
}

/**
 * SSLRequest, then TLS over the same socket when the server answers 'S'
 * (PostgreSQL protocol, "SSL Session Encryption"). A server answering 'N'
 * does not offer TLS, which no mode above disable accepts.
 */
async function negotiateTls(socket: Socket, host: string, sslmode: SslMode, ca: Buffer | undefined): Promise<Socket> {
  const answer = await new Promise<Buffer>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      socket.off('error', reject);
      socket.off('close', onClose);
      socket.pause();
      // The answer is one byte; anything after it would be a server speaking first (CVE-2021-23222).
      if (chunk.length !== 1) reject(new SslModeError(`server sent ${chunk.length} bytes in answer to SSLRequest, expected 1`));
      else resolve(chunk);
    };
    const onClose = (): void => reject(new Error('server closed the connection during SSLRequest'));
    socket.once('data', onData);
    socket.once('error', reject);
    socket.once('close', onClose);
    socket.write(untypedMessage(new BodyWriter().int32(SSL_REQUEST_CODE).build()));
  });
  socket.removeAllListeners('data');
  if (answer[0] !== 0x53) {
    throw new SslModeError(`sslmode ${sslmode}: server at ${host} does not support SSL (it answered "${String.fromCharCode(answer[0])}" to SSLRequest; is ssl=on?)`);
  }
  const verify = sslmode === 'verify-ca' || sslmode === 'verify-full';
  const tls = tlsConnect({
    socket,
    host,
    ca,
    rejectUnauthorized: verify,
    // verify-ca checks the chain only; verify-full also the host name (Node's default check).
    checkServerIdentity: sslmode === 'verify-full' ? checkServerIdentity : () => undefined,
    servername: isIpAddress(host) ? undefined : host,
  });
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', resolve);
    tls.once('error', (err) => reject(new SslModeError(`sslmode ${sslmode}: TLS with ${host}: ${err.message}`)));
  });
  tls.setNoDelay(true);
  return tls;
}

function isIpAddress(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}

/** One result set of a simple query, values raw (text format). */
export interface ResultSet {
  columns: string[];
  rows: (Buffer | null)[][];
}

/** What arrives in CopyBoth mode. */
export type CopyEvent = { kind: 'data'; payload: Buffer } | { kind: 'done' };

/** One replication connection. */
export class ReplicationClient {
  readonly parameters = new Map<string, string>();
  #conn: MessageSocket;

  private constructor(conn: MessageSocket) {
    this.#conn = conn;
  }

  /** Connect, authenticate and wait for ReadyForQuery. */
  static async connect(options: ReplicationConnectionOptions): Promise<ReplicationClient> {
    const sslmode = options.sslmode ?? 'disable';
    if (!SSL_MODES.includes(sslmode)) throw new SslModeError(`sslmode "${String(sslmode)}" is not one of ${SSL_MODES.join(', ')}`);
    if ((sslmode === 'verify-ca' || sslmode === 'verify-full') && !options.sslrootcert) {
      throw new SslModeError(`sslmode ${sslmode} needs sslrootcert (a CA certificate file)`);
    }
    const ca = options.sslrootcert && sslmode !== 'disable' ? await readFile(options.sslrootcert).catch((err: Error) => {
      throw new SslModeError(`read sslrootcert ${options.sslrootcert}: ${err.message}`);
    }) : undefined;
    let socket: Socket = netConnect({ host: options.host, port: options.port, localAddress: options.localAddress });
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), CONNECT_TIMEOUT_MS);
    timer.unref();
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      if (sslmode !== 'disable') socket = await negotiateTls(socket, options.host, sslmode, ca);
      const client = new ReplicationClient(new MessageSocket(socket, { startup: false, maxLength: MAX_SERVER_MESSAGE_BYTES }));
      await client.#startup(options);
      return client;
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async #startup(options: ReplicationConnectionOptions): Promise<void> {
    const params: Record<string, string> = {
      user: options.user,
      replication: options.database ? 'database' : 'true',
      application_name: options.applicationName ?? 'dwcp',
    };
    if (options.database) params.database = options.database;
    await this.#conn.write(startupMessage(params));
    let scram: ScramClient | undefined;
    for (;;) {
      const m = await this.#next();
      if (m.type === 'R') {
        const r = new BodyReader(m.body);
        const code = r.int32();
        const password = options.password ?? '';
        // Authentication request codes: 0 ok, 3 cleartext, 5 MD5, 10/11/12 SASL.
        if (code === 0) continue;
        if (code === 3) {
          await this.#conn.write(message('p', new BodyWriter().cstring(password).build()));
        } else if (code === 5) {
          const salt = r.bytes(4);
          const inner = createHash('md5').update(password + options.user).digest('hex');
          const outer = createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
          await this.#conn.write(message('p', new BodyWriter().cstring(`md5${outer}`).build()));
        } else if (code === 10) {
          const mechanisms = r.rest().toString('utf8').split('\0');
          if (!mechanisms.includes(SCRAM_MECHANISM)) throw new Error(`no supported SASL mechanism in ${mechanisms.join(' ')}`);
          scram = new ScramClient(password);
          const first = Buffer.from(scram.first());
          await this.#conn.write(message('p', new BodyWriter().cstring(SCRAM_MECHANISM).int32(first.length).bytes(first).build()));
        } else if (code === 11 && scram) {
          await this.#conn.write(message('p', Buffer.from(scram.final(r.rest().toString('utf8')))));
        } else if (code === 12 && scram) {
          scram.verify(r.rest().toString('utf8'));
        } else {
          throw new Error(`unsupported authentication request ${code}`);
        }
      } else if (m.type === 'S') {
        const r = new BodyReader(m.body);
        this.parameters.set(r.cstring(), r.cstring());
      } else if (m.type === 'Z') {
        return;
      }
    }
  }

  /** Next message; ErrorResponse becomes PgError, end of stream an Error. */
  async #next(): Promise<PgMessage> {
    const m = await this.#conn.read();
    if (!m) throw new Error('server closed the connection');
    if (m.type === 'E') {
      const f = parseErrorFields(m.body);
      throw new PgError(f.severity, f.code, f.message);
    }
    return m;
  }

  /** Read result sets until ReadyForQuery; an ErrorResponse is thrown after it. */
  async #results(): Promise<ResultSet[]> {
    const sets: ResultSet[] = [];
    let failure: PgError | undefined;
    for (;;) {
      const m = await this.#conn.read();
      if (!m) throw failure ?? new Error('server closed the connection');
      if (m.type === 'T') sets.push({ columns: parseRowDescription(m.body), rows: [] });
      else if (m.type === 'D') sets.at(-1)?.rows.push(parseDataRow(m.body));
      else if (m.type === 'E') {
        const f = parseErrorFields(m.body);
        failure = new PgError(f.severity, f.code, f.message);
      } else if (m.type === 'Z') {
        if (failure) throw failure;
        return sets;
      }
    }
  }

  /** Run one simple query; returns its result sets. */
  async simpleQuery(sql: string): Promise<ResultSet[]> {
    await this.#conn.write(query(sql));
    return this.#results();
  }

  /** Send a command that enters CopyBoth mode; resolves on CopyBothResponse. */
  async startCopyBoth(sql: string): Promise<void> {
    await this.#conn.write(query(sql));
    for (;;) {
      const m = await this.#conn.read();
      if (!m) throw new Error('server closed the connection');
      if (m.type === 'W') return;
      if (m.type === 'E') {
        const f = parseErrorFields(m.body);
        await this.#results().catch(() => undefined);
        throw new PgError(f.severity, f.code, f.message);
      }
    }
  }

  /** A copy event already received, without waiting. */
  tryReadCopy(): CopyEvent | undefined {
    for (;;) {
      const m = this.#conn.tryRead();
      if (!m) return undefined;
      const e = this.#copyEvent(m);
      if (e) return e;
    }
  }

  /** The next copy event; the socket stays paused while nobody calls this. */
  async readCopy(): Promise<CopyEvent> {
    for (;;) {
      const e = this.#copyEvent(await this.#next());
      if (e) return e;
    }
  }

  #copyEvent(m: PgMessage): CopyEvent | undefined {
    if (m.type === 'd') return { kind: 'data', payload: m.body };
    if (m.type === 'c') return { kind: 'done' };
    if (m.type === 'E') {
      const f = parseErrorFields(m.body);
      throw new PgError(f.severity, f.code, f.message);
    }
    return undefined; // NoticeResponse, ParameterStatus: ignored in copy mode
  }

  /** Send one CopyData message. */
  async sendCopyData(payload: Buffer): Promise<void> {
    await this.#conn.write(message('d', payload));
  }

  /** Answer the server's CopyDone with ours and read what follows until ReadyForQuery. */
  async endCopy(): Promise<ResultSet[]> {
    await this.#conn.write(message('c'));
    return this.#results();
  }

  /** True once the socket is gone. */
  get closed(): boolean {
    return this.#conn.socket.destroyed;
  }

  /** Terminate and close. */
  close(): void {
    if (!this.#conn.socket.destroyed) {
      this.#conn.socket.end(terminate());
      this.#conn.socket.destroySoon();
    }
  }
}
