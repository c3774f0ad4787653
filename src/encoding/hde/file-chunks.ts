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

/** Chunk a file from its start; throws (with the path) when it cannot be read. */
export async function* fileChunks(path: string, params: CdcParams = DEFAULT_CDC_PARAMS, readBytes = FILE_CHUNKS_READ_BYTES): AsyncGenerator<FileChunk> {
  const cdc = compileCdc(params);
  const buf = Buffer.allocUnsafe(Math.max(readBytes, 2 * params.maxBytes));
  const fh = await open(path, 'r').catch((err: Error) => {
    throw new Error(`chunk file ${path}: ${err.message}`, { cause: err });
  });
  try {
    // buf[start..end) holds bytes not yet chunked; base is their file offset.
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
          const { bytesRead } = await fh.read(buf, end, buf.length - end, base + end);
          if (bytesRead === 0) eof = true;
          end += bytesRead;
        }
      }
      if (start === end) return;
      const cut = nextCut(cdc, buf, start, end, eof);
      // With at least maxBytes at hand nextCut always decides.
      if (cut < 0) throw new Error(`chunk file ${path}: no cut decided at offset ${base + start}`);
      const bytes = buf.subarray(start, cut);
      yield { offset: base + start, length: cut - start, hash: chunkHash(bytes), bytes };
      start = cut;
    }
  } finally {
    await fh.close();
  }
}
