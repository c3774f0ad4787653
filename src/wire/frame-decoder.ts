// Length-prefixed framing: a 4-byte big-endian length, then that many bytes
// of an encoded Envelope. Decoding is an explicit two-state machine
// (READING_LENGTH, READING_BODY); a length above the limit is refused before
// a single body byte is buffered, so a peer cannot make us allocate 4 GiB,
// and a body is held as the chunks that actually arrived, so a peer that
// announces 64 MiB and sends 10 bytes costs 10 bytes.

/** Bytes in the length prefix. */
export const LENGTH_PREFIX_BYTES = 4;

/** Default largest frame body accepted (bytes). */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** A framing error: the connection must be closed; reason says why. */
export class FramingError extends Error {
  override name = 'FramingError';
}

const READING_LENGTH = 0;
const READING_BODY = 1;

/** Prefix one encoded message with its length, ready for socket.write. */
export function frameBytes(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, LENGTH_PREFIX_BYTES);
  return out;
}

/**
 * Incremental decoder: push() socket chunks, get whole frame bodies back.
 * Holds at most one partial frame (bounded by maxFrameBytes).
 */
export class FrameDecoder {
  /** Largest body accepted; may be raised after a handshake (setMaxFrameBytes). */
  maxFrameBytes: number;
  private state = READING_LENGTH;
  private lengthBytes = Buffer.alloc(LENGTH_PREFIX_BYTES);
  private lengthFilled = 0;
  private bodyLength = 0;
  private bodyChunks: Buffer[] = [];
  private bodyFilled = 0;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes of a partial frame currently buffered. */
  get bufferedBytes(): number {
    return this.lengthFilled + this.bodyFilled;
  }

  /** Consume a chunk; returns the complete frame bodies it finished. Throws FramingError. */
  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.state === READING_LENGTH) {
        // Fill the 4-byte prefix, possibly across chunks.
        const take = Math.min(LENGTH_PREFIX_BYTES - this.lengthFilled, chunk.length - offset);
        chunk.copy(this.lengthBytes, this.lengthFilled, offset, offset + take);
        this.lengthFilled += take;
        offset += take;
        if (this.lengthFilled < LENGTH_PREFIX_BYTES) break;
        const length = this.lengthBytes.readUInt32BE(0);
        this.lengthFilled = 0;
        if (length === 0) throw new FramingError('frame length is 0');
        if (length > this.maxFrameBytes) {
          throw new FramingError(`frame length ${length} exceeds maximum ${this.maxFrameBytes}`);
        }
        // Whole body already in this chunk: hand out a slice, no copy.
        if (chunk.length - offset >= length) {
          frames.push(chunk.subarray(offset, offset + length));
          offset += length;
          continue;
        }
        this.bodyLength = length;
        this.bodyChunks = [];
        this.bodyFilled = 0;
        this.state = READING_BODY;
      } else {
        // Collect body bytes as they arrive; join once complete.
        const take = Math.min(this.bodyLength - this.bodyFilled, chunk.length - offset);
        this.bodyChunks.push(chunk.subarray(offset, offset + take));
        this.bodyFilled += take;
        offset += take;
        if (this.bodyFilled < this.bodyLength) break;
        frames.push(Buffer.concat(this.bodyChunks, this.bodyLength));
        this.bodyChunks = [];
        this.bodyFilled = 0;
        this.state = READING_LENGTH;
      }
    }
    return frames;
  }
}
