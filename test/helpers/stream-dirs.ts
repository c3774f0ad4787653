// Objects streams laid out as <dir>/<id>-src -> <dir>/<id>-dst (the live
// configuration tests add and remove such streams), and the check that one
// of them replicates now.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from './agent-process.ts';

/** Source directory of stream id. */
export function sourceDir(dir: string, id: string): string {
  return join(dir, `${id}-src`);
}

/** Destination directory of stream id. */
export function destDir(dir: string, id: string): string {
  return join(dir, `${id}-dst`);
}

/** Write a file with unique content into a stream's source and wait for it at its destination. */
export async function replicates(dir: string, id: string, file: string, timeoutMs: number): Promise<void> {
  const body = `${id}/${file}: ${Math.random()}`;
  await mkdir(sourceDir(dir, id), { recursive: true });
  await writeFile(join(sourceDir(dir, id), file), body);
  await waitFor(`${id}/${file} at the destination`, async () => (await readFile(join(destDir(dir, id), file), 'utf8').catch(() => '')) === body, timeoutMs, 100);
}
