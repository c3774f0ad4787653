// Stage delta@1's codec: an rsync-style binary delta of a chunk against a
// base the destination holds (its older version of the same region of the
// file). The destination sends block signatures of the base (a rolling
// weak sum and a truncated SHA-256 per block); the source, which holds only
// the new bytes, finds the base's blocks in the new chunk with the rolling
// sum and writes copy and literal ops; the destination rebuilds the chunk
// from its base and the literals. zstd with the old chunk as its reference
// would need the old bytes at the source, which only the destination has,
// hence signatures. The literals are compressed with the frame (zstd@1).
// Decoding writes at most the declared length and never reads outside the
// base or the payload; the caller checks the rebuilt chunk's SHA-256 before
// using it (a wrong delta is refused, never applied).
// Pure: bytes in, bytes out.

import { createHash } from 'node:crypto';

/** Bytes of one block signature: 4 of weak sum, STRONG_BYTES of SHA-256. */
export const SIGNATURE_BYTES = 12;
/** Bytes of the truncated SHA-256 per block (a false match only costs a refused chunk: the whole chunk's hash is checked). */
const STRONG_BYTES = 8;
/** Smallest and largest block, bytes. */
export const MIN_BLOCK_BYTES = 512;
export const MAX_BLOCK_BYTES = 64 * 1024;
/** Blocks per base scale with its square root (as rsync's): block = 4 x sqrt(length), a power of two in the bounds. */
const BLOCK_SQRT_FACTOR = 4;

/** Op tags, in the low bit of an op's first varint. */
const OP_LITERAL = 0;
const OP_COPY = 1;

/** The signatures of a base, as a ChunkHave's DeltaBase carries them. */
export interface BaseSignatures {
  /** Base length, bytes. */
  length: number;
  /** Block size, bytes (the last block may be shorter). */
  blockBytes: number;
  /** SIGNATURE_BYTES per block, ceil(length / blockBytes) blocks. */
  signatures: Uint8Array;
}

/** The block size for a base of length bytes. */
export function blockBytesFor(length: number): number {
  const want = BLOCK_SQRT_FACTOR * Math.sqrt(Math.max(1, length));
  let block = MIN_BLOCK_BYTES;
  while (block < want && block < MAX_BLOCK_BYTES) block *= 2;
  return block;
}

/** Signatures of base, in blocks of blockBytes (default blockBytesFor(base.length)). */
export function baseSignatures(base: Uint8Array, blockBytes = blockBytesFor(base.length)): BaseSignatures {
  const blocks = Math.ceil(base.length / blockBytes);
  const signatures = Buffer.alloc(blocks * SIGNATURE_BYTES);
  for (let i = 0; i < blocks; i++) {
    const block = base.subarray(i * blockBytes, Math.min(base.length, (i + 1) * blockBytes));
    signatures.writeUInt32BE(weakSum(block, 0, block.length), i * SIGNATURE_BYTES);
    strongSum(block).copy(signatures, i * SIGNATURE_BYTES + 4);
  }
  return { length: base.length, blockBytes, signatures };
}

/** Check signatures received from a peer; throws naming what is wrong. */
export function checkSignatures(sig: BaseSignatures, maxLength: number): void {
  if (!(Number.isInteger(sig.length) && sig.length >= 1 && sig.length <= maxLength)) throw new Error(`delta base: length ${sig.length}, want 1..${maxLength}`);
  if (!(Number.isInteger(sig.blockBytes) && sig.blockBytes >= MIN_BLOCK_BYTES && sig.blockBytes <= MAX_BLOCK_BYTES)) {
    throw new Error(`delta base: block of ${sig.blockBytes} bytes, want ${MIN_BLOCK_BYTES}..${MAX_BLOCK_BYTES}`);
  }
  const want = Math.ceil(sig.length / sig.blockBytes) * SIGNATURE_BYTES;
  if (sig.signatures.length !== want) throw new Error(`delta base: ${sig.signatures.length} signature bytes, want ${want}`);
}

/**
 * The delta of target against the base described by sig: copy ops for the
 * base's full blocks found in target (at any offset), literals for the rest.
 * Only full-length blocks are matched (the base's short tail, if any, goes
 * as literal bytes).
 */
export function encodeDelta(target: Uint8Array, sig: BaseSignatures): Buffer {
  const B = sig.blockBytes;
  const fullBlocks = Math.floor(sig.length / B);
  // Weak sum -> block indexes with it (full blocks only).
  const byWeak = new Map<number, number[]>();
  const sigs = Buffer.from(sig.signatures.buffer, sig.signatures.byteOffset, sig.signatures.byteLength);
  for (let i = 0; i < fullBlocks; i++) {
    const w = sigs.readUInt32BE(i * SIGNATURE_BYTES);
    const list = byWeak.get(w);
    if (list) list.push(i);
    else byWeak.set(w, [i]);
  }

  const out = new OpWriter();
  let literalFrom = 0;
  let p = 0;
  // The copy run being built: blocks [runStart, runStart + runBlocks).
  let runStart = -1;
  let runBlocks = 0;
  const flushRun = () => {
    if (runBlocks > 0) out.copy(runStart, runBlocks);
    runBlocks = 0;
  };
  let a = 0;
  let b = 0;
  const resum = () => {
    a = 0;
    b = 0;
    for (let i = 0; i < B; i++) {
      a += target[p + i];
      b += (B - i) * target[p + i];
    }
    a &= 0xffff;
    b &= 0xffff;
  };
  if (fullBlocks > 0 && p + B <= target.length) resum();
  while (fullBlocks > 0 && p + B <= target.length) {
    const weak = ((b << 16) | a) >>> 0;
    const candidates = byWeak.get(weak);
    let match = -1;
    if (candidates) {
      const strong = strongSum(target.subarray(p, p + B));
      // The block after the current run first: runs stay long.
      const next = runBlocks > 0 ? runStart + runBlocks : -1;
      const order = next >= 0 && candidates.includes(next) ? [next, ...candidates] : candidates;
      for (const i of order) {
        if (strong.equals(sigs.subarray(i * SIGNATURE_BYTES + 4, (i + 1) * SIGNATURE_BYTES))) {
          match = i;
          break;
        }
      }
    }
    if (match >= 0) {
      // Literal bytes before the match, then extend or start a copy run.
      if (literalFrom < p) {
        flushRun();
        out.literal(target.subarray(literalFrom, p));
      }
      if (runBlocks > 0 && match === runStart + runBlocks) runBlocks++;
      else {
        flushRun();
        runStart = match;
        runBlocks = 1;
      }
      p += B;
      literalFrom = p;
      if (p + B <= target.length) resum();
      continue;
    }
    // Roll one byte: drop target[p], add target[p + B].
    if (p + B >= target.length) break;
    const old = target[p];
    const add = target[p + B];
    a = (a - old + add) & 0xffff;
    b = (b - B * old + a) & 0xffff;
    p++;
  }
  flushRun();
  if (literalFrom < target.length) out.literal(target.subarray(literalFrom));
  return out.finish();
}

/**
 * Rebuild a chunk of exactly targetLength bytes from base and a delta made
 * by encodeDelta against base's signatures with blockBytes; throws on any
 * malformed op, a copy outside the base, or a length other than declared.
 * The caller checks the result's hash.
 */
export function applyDelta(base: Uint8Array, blockBytes: number, delta: Uint8Array, targetLength: number): Buffer {
  const out = Buffer.allocUnsafe(targetLength);
  const blocks = Math.ceil(base.length / blockBytes);
  let at = 0;
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (pos >= delta.length) throw new Error(`delta: truncated at byte ${pos}`);
      const byte = delta[pos++];
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      scale *= 128;
    }
    throw new Error(`delta: varint too long at byte ${pos}`);
  };
  while (pos < delta.length) {
    const head = varint();
    const count = Math.floor(head / 2);
    if (count < 1) throw new Error(`delta: empty op at byte ${pos}`);
    if (head % 2 === OP_LITERAL) {
      if (pos + count > delta.length) throw new Error(`delta: literal of ${count} bytes, ${delta.length - pos} left`);
      if (at + count > targetLength) throw new Error(`delta: output beyond the declared ${targetLength} bytes`);
      out.set(delta.subarray(pos, pos + count), at);
      pos += count;
      at += count;
    } else {
      const first = varint();
      if (first + count > blocks) throw new Error(`delta: copy of blocks ${first}..${first + count - 1}, base has ${blocks}`);
      const from = first * blockBytes;
      const to = Math.min(base.length, (first + count) * blockBytes);
      if (at + (to - from) > targetLength) throw new Error(`delta: output beyond the declared ${targetLength} bytes`);
      out.set(base.subarray(from, to), at);
      at += to - from;
    }
  }
  if (at !== targetLength) throw new Error(`delta: rebuilt ${at} bytes, declared ${targetLength}`);
  return out;
}

// rsync's weak sum of buf[from, from + n): a and b, 16 bits each.
function weakSum(buf: Uint8Array, from: number, n: number): number {
  let a = 0;
  let b = 0;
  for (let i = 0; i < n; i++) {
    a += buf[from + i];
    b += (n - i) * buf[from + i];
  }
  return (((b & 0xffff) << 16) | (a & 0xffff)) >>> 0;
}

function strongSum(block: Uint8Array): Buffer {
  return createHash('sha256').update(block).digest().subarray(0, STRONG_BYTES);
}

/** Ops as varints and literal bytes, gathered in parts. */
class OpWriter {
  readonly #parts: Uint8Array[] = [];

  literal(bytes: Uint8Array): void {
    this.#parts.push(varintBytes(bytes.length * 2 + OP_LITERAL), bytes);
  }

  copy(firstBlock: number, blocks: number): void {
    this.#parts.push(varintBytes(blocks * 2 + OP_COPY), varintBytes(firstBlock));
  }

  finish(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

function varintBytes(value: number): Buffer {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}
