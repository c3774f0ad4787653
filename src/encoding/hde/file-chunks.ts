// The content-defined chunks of a file, read in bounded pieces: memory stays
// at one read buffer (at least two maximal chunks) whatever the file's size,
// and the chunks are exactly those of cutPoints over the whole file.

import { open } from 'node:fs/promises';
import { chunkHash, compileCdc, DEFAULT_CDC_PARAMS, nextCut, type CdcParams, type ChunkRef } from './fastcdc.ts';

/** Default read size, bytes (clamped up to two maximal chunks). */
export const FILE_CHUNKS_READ_BYTES = 1024 * 1024;

/** A chunk of a file with its bytes (a view into the read buffer, valid until the next iteration). */
export interface FileChunk extends ChunkRef {
  bytes: Buffer;
}

/** Read up to length bytes at file position into into[at..]; 0 at the end of the file (as FileHandle.read). */
export type RangeRead = (into: Buffer, at: number, length: number, position: number) => Promise<number>;

/** Chunk whatever read returns, from position 0 to its end. */
export async function* readChunks(read: RangeRead, params: CdcParams = DEFAULT_CDC_PARAMS, readBytes = FILE_CHUNKS_READ_BYTES): AsyncGenerator<FileChunk> {
  const cdc = compileCdc(params);
  const buf = Buffer.allocUnsafe(Math.max(readBytes, 2 * params.maxBytes));
  // buf[start..end) holds bytes not yet chunked; base is the file offset of buf[0].
  let base = 0;
  let start = 0;
  let end = 0;
  let eof = false;
  for (;;) {
    // Refill when the rest of the buffer may not hold a whole chunk.
    if (!eof && end - start < params.maxBytes) {
      buf.copy(buf, 0, start, end);
      base += start;
      end -= start;
      start = 0;
      while (!eof && end < buf.length) {
        const n = await read(buf, end, buf.length - end, base + end);
        if (n === 0) eof = true;
        end += n;
      }
    }
    if (start === end) return;
    const cut = nextCut(cdc, buf, start, end, eof);
    // With at least maxBytes at hand nextCut always decides.
    if (cut < 0) throw new Error(`chunking: no cut decided at offset ${base + start}`);
    const bytes = buf.subarray(start, cut);
    yield { offset: base + start, length: cut - start, hash: chunkHash(bytes), bytes };
    start = cut;
  }
}

/** Chunk a file by name; errors name the path. */
export async function* fileChunks(path: string, params: CdcParams = DEFAULT_CDC_PARAMS, readBytes = FILE_CHUNKS_READ_BYTES): AsyncGenerator<FileChunk> {
  const fh = await open(path, 'r').catch((err: Error) => {
    throw new Error(`chunk file ${path}: ${err.message}`, { cause: err });
  });
  try {
    yield* readChunks(async (into, at, length, position) => (await fh.read(into, at, length, position)).bytesRead, params, readBytes);
  } catch (err) {
    throw new Error(`chunk file ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    await fh.close();
  }
}
