// The native zstd layer, declared in one typed file: the parts of
// zstd-napi's raw binding that HDE uses. Nothing else loads the addon's
// binding directly. The raw binding lets us size every output buffer
// ourselves, so a peer's payload can never make us allocate more than the
// (bounded) plaintext length its frame declares.

import { createRequire } from 'node:module';

/** What ZSTD_compressStream2 / ZSTD_decompressStream return: [hint or remaining, bytes written, bytes read]. */
export type StreamResult = [returnValue: number, dstProduced: number, srcConsumed: number];

/** A ZSTD_CCtx (also a ZSTD_CStream). */
export interface NativeCCtx {
  setParameter(param: number, value: number): void;
  reset(directive: number): void;
  compressStream2(dst: Uint8Array, src: Uint8Array, endOp: number): StreamResult;
  /** One-shot compression of src into dst with the parameters set (ZSTD_compress2); returns bytes written, throws when dst is too small. */
  compress2(dst: Uint8Array, src: Uint8Array): number;
  /** One-shot compression of src with dict (raw content or ZDICT) into dst; returns bytes written. */
  compressUsingDict(dst: Uint8Array, src: Uint8Array, dict: Uint8Array, level: number): number;
}

/** A ZSTD_DCtx (also a ZSTD_DStream). */
export interface NativeDCtx {
  setParameter(param: number, value: number): void;
  reset(directive: number): void;
  decompressStream(dst: Uint8Array, src: Uint8Array): StreamResult;
  /** One-shot decompression of whole frames made with dict into dst; returns bytes written, throws when dst is too small. */
  decompressUsingDict(dst: Uint8Array, src: Uint8Array, dict: Uint8Array): number;
}

/** The raw binding's surface used here. */
export interface ZstdBinding {
  CCtx: new () => NativeCCtx;
  DCtx: new () => NativeDCtx;
  /** One-shot decompression of whole frames into dst; returns bytes written. */
  decompress(dst: Uint8Array, src: Uint8Array): number;
  compressBound(srcSize: number): number;
  versionString(): string;
  CParameter: { compressionLevel: number; windowLog: number; checksumFlag: number; contentSizeFlag: number };
  DParameter: { windowLogMax: number };
  EndDirective: { continue: number; flush: number; end: number };
  ResetDirective: { sessionOnly: number; parameters: number; sessionAndParameters: number };
}

/** zstd-napi's raw binding (zstd-napi/binding.js). */
export const zstd = createRequire(import.meta.url)('zstd-napi/binding.js') as ZstdBinding;
