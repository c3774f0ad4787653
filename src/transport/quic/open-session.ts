// A library QUIC session addressed only while it is open.
//
// @currentspace/http3 0.9.0 names a server connection by a slab index and
// gives the index of a closed connection to the next connection it accepts
// (three connections in turn on one listener all had handle 0); close and
// metrics calls carry only that index. A call on a session after the
// library reported it closed therefore ends or measures whichever
// connection holds the index now. A carrier closed by its peer used to
// close its session once more a tick later, and under load that close hit
// the next dialer's connection mid-handshake (seen in CI as "application
// error (code 12)", test/transport/quic-closed-session.test.ts).
//
// What this cannot prevent: a close decided in the same instant as the
// peer's, after the library freed the index but before its close event
// reached JavaScript. Only the library can close that window (a generation
// in the handle); one close per session keeps it as narrow as it can be.

/** How a connection closed: its QUIC error code and reason, as the library reports them. */
export interface SessionCloseInfo {
  errorCode: number;
  reason: string;
}

/** Transport counters of a QUIC connection, as @currentspace/http3 reports them. */
export interface QuicMetrics {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  rttMs: number;
  cwnd: number;
}

/** What is used of a library session (client and server sessions both fit). */
export interface LibrarySession {
  close(errorCode?: number, reason?: string): unknown;
  getMetrics(): QuicMetrics | null;
  on(event: 'close', listener: (info: SessionCloseInfo) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/** Longest close reason sent in CONNECTION_CLOSE, characters (the frame must fit a packet). */
export const MAX_CLOSE_REASON_CHARS = 200;

/**
 * A session closed at most once and never addressed after the library
 * reported it closed. Listens to 'error' from the start (an 'error' without
 * a listener would throw and take the agent down).
 */
export class OpenSession {
  private readonly session: LibrarySession;
  private info: SessionCloseInfo | null = null;
  private closing = false;
  private readonly closeListeners: Array<(info: SessionCloseInfo) => void> = [];
  private readonly errorListeners: Array<(err: Error) => void> = [];

  constructor(session: LibrarySession) {
    this.session = session;
    session.on('close', (info) => {
      if (this.info) return;
      this.info = info;
      for (const listener of this.closeListeners.splice(0)) listener(info);
    });
    session.on('error', (err) => {
      for (const listener of this.errorListeners) listener(err);
    });
  }

  /** How the library reported the connection closed, once it has. */
  get closedWith(): SessionCloseInfo | null {
    return this.info;
  }

  /** Close the connection with an application error code and reason, unless it closed or is closing already. */
  close(errorCode: number, reason: string): void {
    if (this.info || this.closing) return;
    this.closing = true;
    const result = this.session.close(errorCode, reason.slice(0, MAX_CLOSE_REASON_CHARS));
    // A client session's close is async; a failure means it was closing anyway.
    if (result instanceof Promise) result.catch(() => {});
  }

  /** The library's connection metrics; null once the connection closed. */
  getMetrics(): QuicMetrics | null {
    return this.info ? null : this.session.getMetrics();
  }

  /** Call `listener` when the connection closes (at once if it has). */
  onClose(listener: (info: SessionCloseInfo) => void): void {
    if (this.info) listener(this.info);
    else this.closeListeners.push(listener);
  }

  /** Call `listener` on each connection error the library reports (its close follows). */
  onError(listener: (err: Error) => void): void {
    this.errorListeners.push(listener);
  }

  /** Resolves with how the connection closed, or null if it has not by `deadline` (ms since the epoch). */
  closedBy(deadline: number): Promise<SessionCloseInfo | null> {
    if (this.info) return Promise.resolve(this.info);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.info), Math.max(0, deadline - Date.now()));
      timer.unref();
      this.onClose((info) => {
        clearTimeout(timer);
        resolve(info);
      });
    });
  }
}
