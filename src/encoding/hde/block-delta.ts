// Stage delta@1's codec: an rsync-style binary delta of a chunk against a
// base the destination holds (its older version of the same region of the
// file). The destination sends block signatures of the base (a rolling
// weak sum and a truncated SHA-256 per block); the source, which holds only
// the new bytes, finds the base's blocks in the new chunk with the rolling
// sum (a polynomial hash, see weakSum) and writes copy and literal ops; the destination rebuilds the chunk
// from its base and the literals. zstd with the old chunk as its reference
// would need the old bytes at the source, which only the destination has,
// hence signatures. The literals are compressed with the frame (zstd@1).
// Decoding writes at most the declared length and never reads outside the
// base or the payload; the caller checks the rebuilt chunk's SHA-256 before
// using it (a wrong delta is refused, never applied).
// Pure: bytes in, bytes out.

import { createHash } from 'node:crypto';

/** Bytes of one block signature: 4 of weak rolling sum, STRONG_BYTES of SHA-256. */
export const SIGNATURE_BYTES = 12;
/** Bytes of the truncated SHA-256 per block (a false match only costs a refused chunk: the whole chunk's hash is checked). */
const STRONG_BYTES = 8;
/** Smallest and largest block, bytes. */
export const MIN_BLOCK_BYTES = 512;
export const MAX_BLOCK_BYTES = 64 * 1024;
/** Blocks per base scale with its square root (as rsync's): block = 4 x sqrt(length), a power of two in the bounds. */
const BLOCK_SQRT_FACTOR = 4;

/** Multiplier of the rolling weak sum (FNV-1's 32-bit prime: odd, bits spread). */
const WEAK_MULTIPLIER = 0x01000193;

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
  // The window's weak sum, and M^(B-1) to take its first byte out when rolling.
  let h = 0;
  const outFactor = power(WEAK_MULTIPLIER, B - 1);
  const resum = () => {
    h = weakSum(target, p, B);
  };
  if (fullBlocks > 0 && p + B <= target.length) resum();
  while (fullBlocks > 0 && p + B <= target.length) {
    const candidates = byWeak.get(h);
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
    h = (Math.imul((h - Math.imul(target[p], outFactor)) | 0, WEAK_MULTIPLIER) + target[p + B]) >>> 0;
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

// The weak sum of buf[from, from + n): a polynomial (Rabin-Karp) hash mod
// 2^32, rolled a byte at a time. rsync's Adler-style sum was tried first: on
// JSON and text its 16-bit halves collide so often that nearly every byte
// position needed a SHA-256 (measured: +40 ms of CPU per changed small file).
function weakSum(buf: Uint8Array, from: number, n: number): number {
  let h = 0;
  for (let i = 0; i < n; i++) h = (Math.imul(h, WEAK_MULTIPLIER) + buf[from + i]) | 0;
  return h >>> 0;
}

// m^k mod 2^32.
function power(m: number, k: number): number {
  let r = 1;
  for (let i = 0; i < k; i++) r = Math.imul(r, m);
  return r;
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
