// A carrier over a byte-stream socket (TLS over TCP, or TLS inside a
// WebSocket). Reads go through the
// FrameDecoder state machine; anything malformed closes this carrier with a
// logged reason and never reaches the rest of the agent.

import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { FrameDecoder, FramingError } from '../wire/frame-decoder.ts';
import { envelopeCodec, type Envelope } from '../wire/messages.ts';
import { frameEnvelope } from './envelope-framing.ts';
import type { TransportKind } from './transport.ts';
import { HANDSHAKE_MAX_FRAME_BYTES, type Carrier, type CarrierHandlers, type CloseInfo } from './carrier.ts';

/** A carrier on a stream socket. */
export class SocketCarrier implements Carrier {
  readonly index: number;
  readonly kind: TransportKind;
  /** The TCP socket underneath (for TCP_INFO and tuning), when there is one. */
  readonly tcpSocket?: Socket;
  private readonly socket: Duplex;
  private readonly decoder: FrameDecoder;
  private readonly maxFrameBytes: number;
  private handlers: CarrierHandlers | null = null;
  private early: Array<[Envelope, number]> = [];
  private closeInfo: CloseInfo | null = null;
  private written = 0;
  private drainWaiters: Array<() => void> = [];

  /** A carrier of `kind` reading and writing `socket`; tcpSocket is the TCP socket underneath, if any. */
  constructor(kind: TransportKind, socket: Duplex, index: number, maxFrameBytes: number, tcpSocket?: Socket) {
    this.kind = kind;
    this.socket = socket;
    this.index = index;
    this.tcpSocket = tcpSocket;
    // Until the handshake is done only a small Hello may arrive.
    this.decoder = new FrameDecoder(Math.min(maxFrameBytes, HANDSHAKE_MAX_FRAME_BYTES));
    this.maxFrameBytes = maxFrameBytes;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.wakeDrainWaiters());
    socket.on('error', (err) => this.finish({ reason: `socket error: ${err.message}`, protocolError: false }));
    socket.on('close', () => this.finish({ reason: 'socket closed', protocolError: false }));
    socket.on('end', () => this.finish({ reason: 'peer ended the connection', protocolError: false }));
  }

  get closed(): boolean {
    return this.closeInfo !== null;
  }

  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  get writtenBytes(): number {
    return this.written;
  }

  /** Why the carrier closed, once it has. */
  get closedWith(): CloseInfo | null {
    return this.closeInfo;
  }

  /** The handshake is done: accept frames up to the configured maximum. */
  handshakeDone(): void {
    this.decoder.maxFrameBytes = this.maxFrameBytes;
  }

  attach(handlers: CarrierHandlers): void {
    this.handlers = handlers;
    // Deliver what arrived between the handshake and attach, then a close that happened meanwhile.
    const early = this.early;
    this.early = [];
    for (const [env, n] of early) handlers.onMessage(env, n);
    if (this.closeInfo) handlers.onClose(this.closeInfo);
  }

  /** Stop delivering; messages buffer until the next attach (hand-over after a handshake). */
  detach(): void {
    this.handlers = null;
  }

  write(framed: Buffer): boolean {
    if (this.closeInfo) return false;
    this.written += framed.length;
    this.socket.write(framed);
    return true;
  }

  /** Encode, frame and write one envelope. */
  send(envelope: Envelope): boolean {
    return this.write(frameEnvelope(envelope));
  }

  drained(): Promise<void> {
    if (this.closeInfo || this.socket.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  close(reason: string): void {
    this.finish({ reason, protocolError: false });
  }

  /** Close because the peer broke the protocol. */
  fail(reason: string): void {
    this.finish({ reason, protocolError: true });
  }

  private onData(chunk: Buffer): void {
    if (this.closeInfo) return;
    // Decode whole frames; any framing or protobuf error closes this carrier.
    let bodies: Buffer[];
    try {
      bodies = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err instanceof FramingError ? `malformed frame: ${err.message}` : `read: ${(err as Error).message}`);
      return;
    }
    for (const body of bodies) {
      let envelope: Envelope;
      try {
        envelope = envelopeCodec.decode(body);
      } catch (err) {
        this.fail(`malformed envelope (${body.length} bytes): ${(err as Error).message}`);
        return;
      }
      if (this.handlers) this.handlers.onMessage(envelope, body.length + 4);
      else this.early.push([envelope, body.length + 4]);
      if (this.closeInfo) return;
    }
  }

  private finish(info: CloseInfo): void {
    if (this.closeInfo) return;
    this.closeInfo = info;
    this.socket.destroy();
    this.wakeDrainWaiters();
    this.handlers?.onClose(info);
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
