// A WebSocket as a byte stream for the TLS running inside it: writes go out
// as binary messages of at most WS_SEND_MESSAGE_BYTES (the peer refuses
// messages above WS_MAX_MESSAGE_BYTES, and TLS output for one large frame
// can come in one large chunk), reads pause the WebSocket while the reader
// is behind (backpressure reaches the socket). ws's own
// createWebSocketStream sends each write as one message, whatever its size.

import { Duplex } from 'node:stream';
import { WebSocket } from 'ws';

/** Largest binary message this side sends, bytes. */
export const WS_SEND_MESSAGE_BYTES = 64 * 1024;

/** A duplex over an open WebSocket: binary messages in, binary messages out. */
export function webSocketDuplex(ws: WebSocket): Duplex {
  const duplex = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      if (ws.readyState !== WebSocket.OPEN) return callback(new Error(`websocket is not open (state ${ws.readyState})`));
      // The callback waits for the last part to reach the socket: that is the write's backpressure.
      for (let offset = 0; offset < chunk.length; offset += WS_SEND_MESSAGE_BYTES) {
        const last = offset + WS_SEND_MESSAGE_BYTES >= chunk.length;
        ws.send(chunk.subarray(offset, offset + WS_SEND_MESSAGE_BYTES), { binary: true }, last ? (err) => callback(err ?? null) : undefined);
      }
    },
    read() {
      ws.resume();
    },
    final(callback) {
      ws.close(1000);
      callback();
    },
    destroy(err, callback) {
      endWebSocket(ws);
      callback(err);
    },
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return duplex.destroy(new Error('websocket: text message where binary was expected'));
    if (!duplex.push(data)) ws.pause();
  });
  ws.on('close', () => duplex.push(null));
  ws.on('error', (err) => duplex.destroy(err));
  return duplex;
}

/**
 * Cut a WebSocket, unless ws is already closing it: after refusing a
 * message (1009, 1002 ...) its close code must reach the peer; ws's own
 * close timer bounds that wait.
 */
export function endWebSocket(ws: WebSocket): void {
  if (ws.readyState !== WebSocket.CLOSING) ws.terminate();
}
