// PostgreSQL frontend/backend protocol v3 at the byte level: a framing state
// machine that turns socket bytes into messages, builders for the messages
// both sides send, and a socket wrapper whose reads pause the socket when the
// consumer is behind. Shared by the replication client (wal-source) and the
// walsender-compatible server, so both speak exactly the same framing.

import type { Socket } from 'node:net';

/** Protocol 3.0 in a startup message. */
export const PROTOCOL_3 = 196608;
/** SSLRequest code in place of a protocol version. */
export const SSL_REQUEST_CODE = 80877103;
/** GSSENCRequest code in place of a protocol version. */
export const GSSENC_REQUEST_CODE = 80877104;
/** CancelRequest code in place of a protocol version. */
export const CANCEL_REQUEST_CODE = 80877102;

/** Messages buffered (bytes) before the socket is paused. */
const READ_HIGH_WATER_BYTES = 1024 * 1024;

/** One protocol message; type is '' for a startup-phase message (no type byte). */
export interface PgMessage {
  type: string;
  body: Buffer;
}

/** A protocol violation by the peer (bad length, truncated field ...). */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** Splits a byte stream into messages: READING_HEADER -> READING_BODY. */
export class MessageDecoder {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #startup: boolean;
  #maxLength: number;

  /** startup: the first message has no type byte (server side). */
  constructor(options: { startup: boolean; maxLength: number }) {
    this.#startup = options.startup;
    this.#maxLength = options.maxLength;
  }

  /** Change the largest message length accepted from now on, bytes. */
  set maxLength(bytes: number) {
    this.#maxLength = bytes;
  }

  /** Expect (again) a startup-phase message, e.g. after answering SSLRequest. */
  expectStartup(): void {
    this.#startup = true;
  }

  /** Bytes received but not yet returned as messages. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Add received bytes. */
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /** The next complete message, or undefined when more bytes are needed. */
  next(): PgMessage | undefined {
    const headerLength = this.#startup ? 4 : 5;
    if (this.#buffered < headerLength) return undefined;
    const header = this.#peek(headerLength);
    const type = this.#startup ? '' : String.fromCharCode(header[0]);
    const length = header.readUInt32BE(this.#startup ? 0 : 1);
    const minLength = this.#startup ? 8 : 4;
    if (length < minLength || length > this.#maxLength) {
      throw new ProtocolError(`invalid message length ${length} for message type "${type}"`);
    }
    const total = length + (this.#startup ? 0 : 1);
    if (this.#buffered < total) return undefined;
    const whole = this.#take(total);
    this.#startup = false;
    return { type, body: whole.subarray(headerLength) };
  }

  /** The first n bytes: the first chunk when it holds them, else a copy of just those bytes (a header split across chunks). */
  #peek(n: number): Buffer {
    if (this.#chunks[0].length >= n) return this.#chunks[0];
    const out = Buffer.allocUnsafe(n);
    let have = 0;
    for (let i = 0; have < n; i++) have += this.#chunks[i].copy(out, have, 0, n - have);
    return out;
  }

  /**
   * The next n bytes, consumed: a view of the first chunk when it holds
   * them, else a buffer of exactly n bytes that the chunks are copied into,
   * the last one only in part (its rest stays a view for the next message).
   * Joining whole chunks instead copied the bytes after a message again
   * with the next one: a 128 KiB XLogData message over 64 KiB socket reads
   * cost ~1.5 copies per byte, this one.
   */
  #take(n: number): Buffer {
    const first = this.#chunks[0];
    this.#buffered -= n;
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let have = 0;
    while (have < n) {
      const chunk = this.#chunks[0];
      const used = chunk.copy(out, have, 0, n - have);
      have += used;
      if (used === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(used);
    }
    return out;
  }
}

/** Reads fields of a message body in order; throws ProtocolError past the end. */
export class BodyReader {
  #buf: Buffer;
  #pos = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  #need(n: number): void {
    if (this.#pos + n > this.#buf.length) throw new ProtocolError('message too short');
  }

  byte(): number {
    this.#need(1);
    return this.#buf[this.#pos++];
  }

  int16(): number {
    this.#need(2);
    const v = this.#buf.readInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  int32(): number {
    this.#need(4);
    const v = this.#buf.readInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** Unsigned 64-bit as a number (LSNs and timestamps fit in 2^53). */
  uint64(): number {
    this.#need(8);
    const v = this.#buf.readBigUInt64BE(this.#pos);
    this.#pos += 8;
    return Number(v);
  }

  cstring(): string {
    const end = this.#buf.indexOf(0, this.#pos);
    if (end < 0) throw new ProtocolError('unterminated string');
    const s = this.#buf.toString('utf8', this.#pos, end);
    this.#pos = end + 1;
    return s;
  }

  bytes(n: number): Buffer {
    if (n < 0) throw new ProtocolError('negative length');
    this.#need(n);
    const v = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }

  rest(): Buffer {
    return this.bytes(this.remaining);
  }
}

/** Builds one message body field by field. */
export class BodyWriter {
  #parts: Buffer[] = [];

  byte(v: number): this {
    this.#parts.push(Buffer.from([v]));
    return this;
  }

  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.#parts.push(b);
    return this;
  }

  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.#parts.push(b);
    return this;
  }

  uint64(v: number): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(v))));
    this.#parts.push(b);
    return this;
  }

  cstring(s: string): this {
    this.#parts.push(Buffer.from(s, 'utf8'), Buffer.from([0]));
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    return this;
  }

  build(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

/** A typed message: type byte, int32 length (counting itself), body. */
export function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** A startup-phase message (no type byte). */
export function untypedMessage(body: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length + 4);
  return Buffer.concat([header, body]);
}

// ---- messages a server sends ----

/** Authentication request of the given code with an optional payload. */
export function authentication(code: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return message('R', new BodyWriter().int32(code).bytes(payload).build());
}

/** ParameterStatus name=value. */
export function parameterStatus(name: string, value: string): Buffer {
  return message('S', new BodyWriter().cstring(name).cstring(value).build());
}

/** BackendKeyData. */
export function backendKeyData(pid: number, secret: number): Buffer {
  return message('K', new BodyWriter().int32(pid).int32(secret).build());
}

/** ReadyForQuery, idle. */
export function readyForQuery(): Buffer {
  return message('Z', Buffer.from('I'));
}

/** Well-known type oids used in result sets. */
export const TYPE_OID = { int4: 23, int8: 20, text: 25 } as const;

/** RowDescription for text-format columns. */
export function rowDescription(columns: { name: string; typeOid: number }[]): Buffer {
  const w = new BodyWriter().int16(columns.length);
  for (const c of columns) {
    const size = c.typeOid === TYPE_OID.int4 ? 4 : c.typeOid === TYPE_OID.int8 ? 8 : -1;
    w.cstring(c.name).int32(0).int16(0).int32(c.typeOid).int16(size).int32(-1).int16(0);
  }
  return message('T', w.build());
}

/** DataRow of text values (null = SQL NULL). */
export function dataRow(values: (string | Buffer | null)[]): Buffer {
  const w = new BodyWriter().int16(values.length);
  for (const v of values) {
    if (v === null) {
      w.int32(-1);
      continue;
    }
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    w.int32(b.length).bytes(b);
  }
  return message('D', w.build());
}

/** CommandComplete with a tag. */
export function commandComplete(tag: string): Buffer {
  return message('C', new BodyWriter().cstring(tag).build());
}

/** ErrorResponse (severity ERROR or FATAL, SQLSTATE code, message). */
export function errorResponse(severity: 'ERROR' | 'FATAL', code: string, text: string): Buffer {
  const w = new BodyWriter();
  w.byte(0x53).cstring(severity); // S
  w.byte(0x56).cstring(severity); // V (non-localized)
  w.byte(0x43).cstring(code); // C
  w.byte(0x4d).cstring(text); // M
  w.byte(0);
  return message('E', w.build());
}

/** CopyBothResponse, text format, no columns (as the walsender sends it). */
export function copyBothResponse(): Buffer {
  return message('W', new BodyWriter().byte(0).int16(0).build());
}

/** CopyData carrying payload. */
export function copyData(payload: Buffer): Buffer {
  return message('d', payload);
}

/** CopyDone. */
export function copyDone(): Buffer {
  return message('c');
}

// ---- messages a client sends ----

/** StartupMessage for protocol 3.0 with the given parameters. */
export function startupMessage(params: Record<string, string>): Buffer {
  const w = new BodyWriter().int32(PROTOCOL_3);
  for (const [k, v] of Object.entries(params)) w.cstring(k).cstring(v);
  w.byte(0);
  return untypedMessage(w.build());
}

/** Simple Query. */
export function query(sql: string): Buffer {
  return message('Q', new BodyWriter().cstring(sql).build());
}

/** Terminate. */
export function terminate(): Buffer {
  return message('X');
}

// ---- parsing ----

/** Fields of an ErrorResponse or NoticeResponse. */
export interface ErrorFields {
  severity: string;
  code: string;
  message: string;
}

/** Parse an ErrorResponse/NoticeResponse body. */
export function parseErrorFields(body: Buffer): ErrorFields {
  const r = new BodyReader(body);
  const out: ErrorFields = { severity: '', code: '', message: '' };
  while (r.remaining > 0) {
    const field = r.byte();
    if (field === 0) break;
    const value = r.cstring();
    if (field === 0x53) out.severity = value;
    else if (field === 0x43) out.code = value;
    else if (field === 0x4d) out.message = value;
  }
  return out;
}

/** Parse a DataRow body into raw column values (null = SQL NULL). */
export function parseDataRow(body: Buffer): (Buffer | null)[] {
  const r = new BodyReader(body);
  const count = r.int16();
  const values: (Buffer | null)[] = [];
  for (let i = 0; i < count; i++) {
    const len = r.int32();
    values.push(len < 0 ? null : r.bytes(len));
  }
  return values;
}

/** Parse a RowDescription body into column names. */
export function parseRowDescription(body: Buffer): string[] {
  const r = new BodyReader(body);
  const count = r.int16();
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    names.push(r.cstring());
    r.bytes(18);
  }
  return names;
}

/**
 * A socket read message by message. Reads pause the socket once more than
 * READ_HIGH_WATER_BYTES wait unread, so a slow consumer slows the peer.
 */
export class MessageSocket {
  readonly socket: Socket;
  readonly decoder: MessageDecoder;
  #queue: PgMessage[] = [];
  #queuedBytes = 0;
  #waiter: (() => void) | undefined;
  #ended = false;
  #error: Error | undefined;
  #highWaterBytes: number;

  /** highWaterBytes: unread bytes before the socket pauses (default READ_HIGH_WATER_BYTES). */
  constructor(socket: Socket, options: { startup: boolean; maxLength: number; highWaterBytes?: number }) {
    this.socket = socket;
    this.decoder = new MessageDecoder(options);
    this.#highWaterBytes = options.highWaterBytes ?? READ_HIGH_WATER_BYTES;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#finish());
    socket.on('close', () => this.#finish());
    socket.on('error', (err) => this.#finish(err));
  }

  #onData(chunk: Buffer): void {
    this.decoder.push(chunk);
    this.#decode();
  }

  #decode(): void {
    try {
      for (let m = this.decoder.next(); m; m = this.decoder.next()) {
        this.#queue.push(m);
        this.#queuedBytes += m.body.length + 5;
      }
    } catch (err) {
      this.#error = err as Error;
      this.socket.pause();
    }
    if (this.#queuedBytes + this.decoder.buffered > this.#highWaterBytes) this.socket.pause();
    this.#wake();
  }

  #finish(err?: Error): void {
    this.#ended = true;
    if (err && !this.#error) this.#error = err;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  /** Raise (or lower) the message and buffering bounds, e.g. once a client authenticated. */
  setLimits(limits: { maxLength: number; highWaterBytes: number }): void {
    this.decoder.maxLength = limits.maxLength;
    this.#highWaterBytes = limits.highWaterBytes;
    if (this.#queuedBytes + this.decoder.buffered <= this.#highWaterBytes && !this.#error && !this.#ended) this.socket.resume();
  }

  /** A message already received, without waiting (undefined if none). */
  tryRead(): PgMessage | undefined {
    const m = this.#queue.shift();
    if (m) {
      this.#queuedBytes -= m.body.length + 5;
      if (this.#queuedBytes + this.decoder.buffered <= this.#highWaterBytes && !this.#error) this.socket.resume();
    }
    return m;
  }

  /** The next message; null when the peer closed; throws on a protocol error. */
  async read(): Promise<PgMessage | null> {
    for (;;) {
      const m = this.tryRead();
      if (m) return m;
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
    }
  }

  /** Re-run the decoder after the caller changed its mode (expectStartup). */
  redecode(): void {
    this.#decode();
  }

  /** Write bytes; resolves when the socket accepted them (drain). */
  async write(bytes: Buffer): Promise<void> {
    if (this.socket.destroyed) throw new Error('connection closed');
    if (this.socket.write(bytes)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        this.socket.off('close', onClose);
        resolve();
      };
      const onClose = (): void => {
        this.socket.off('drain', onDrain);
        reject(new Error('connection closed'));
      };
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }
}
