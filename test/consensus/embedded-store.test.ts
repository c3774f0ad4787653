// EmbeddedStore: the shared conformance suite on a temp file, plus what only a
// file-backed store has: reopen, torn tails, crash of the holding process.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, appendFile, stat, truncate, readFile, writeFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { EmbeddedStore } from '../../src/consensus/embedded-store.ts';
import type { Lease } from '../../src/consensus/consensus-store.ts';
import type { StoreLogger } from '../../src/consensus/store-logger.ts';
import { defineConformanceSuite, within, WAIT_MS } from './store-conformance.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const storeModule = path.resolve(here, '../../src/consensus/embedded-store.ts');
/** Extra stall past the TTL when simulating a hung process. */
const STALL_MARGIN_MS = 500;

let dir = '';
let shared: EmbeddedStore | undefined;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'dwcp-embedded-'));
});
after(async () => {
  await shared?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A StoreLogger that keeps what it is told. */
class CapturingLogger implements StoreLogger {
  readonly entries: Array<{ level: 'warn' | 'error'; fields: Record<string, unknown>; message: string }> = [];
  warn(fields: object, message: string): void {
    this.entries.push({ level: 'warn', fields: fields as Record<string, unknown>, message });
  }
  error(fields: object, message: string): void {
    this.entries.push({ level: 'error', fields: fields as Record<string, unknown>, message });
  }
}

/** Block this process's event loop, as a hung or paused holder would be. */
function stall(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

defineConformanceSuite('embedded', () => ({
  // One process, one store: every "client" is the same store.
  open: async () => {
    shared ??= await EmbeddedStore.open(path.join(dir, 'conformance.log'));
    return shared;
  },
  expireLease: async (_store, lease: Lease) => {
    stall(lease.ttlSeconds * 1000 + STALL_MARGIN_MS);
  },
  // One process: a watch cannot be cut off; the gap is writes and a log compaction.
  openGapped: async () => {
    shared ??= await EmbeddedStore.open(path.join(dir, 'conformance.log'));
    const store = shared;
    return {
      store,
      writer: store,
      gap: async (during) => {
        await during();
        await store.compact();
      },
    };
  },
}));

/** Run a child process that writes to the store and reports each acknowledged write on stdout. */
function startWriter(file: string, script: string): { lines: AsyncIterator<string>; kill: () => Promise<void> } {
  const code = `import { EmbeddedStore } from ${JSON.stringify(storeModule)};\nconst store = await EmbeddedStore.open(${JSON.stringify(file)});\n${script}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    lines,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
      await exited;
    },
  };
}

describe('embedded store: persistence', () => {
  test('reopen keeps values, revisions and the store revision', async () => {
    const file = path.join(dir, 'reopen.log');
    const s1 = await EmbeddedStore.open(file);
    const a = await s1.compareAndSwap('/k/a', 0, Buffer.from('1'));
    const bRes = await s1.compareAndSwap('/k/b', 0, Buffer.from('2'));
    await s1.compareAndSwap('/k/b', bRes.revision, Buffer.from('2b'));
    const c = await s1.compareAndSwap('/k/c', 0, Buffer.from('3'));
    const del = await s1.compareAndDelete('/k/c', c.revision);
    const before = await s1.list('/k/');
    await s1.close();

    const s2 = await EmbeddedStore.open(file);
    assert.deepEqual(await s2.list('/k/'), before);
    assert.equal((await s2.get('/k/a'))?.modRevision, a.revision);
    assert.equal(s2.currentRevision(), del.revision);
    const next = await s2.compareAndSwap('/k/d', 0, Buffer.from('4'));
    assert.equal(next.revision, del.revision + 1, 'revision continues after reopen');

    // Compaction rewrites the log; state and revision survive it and a reopen.
    await s2.compact();
    await s2.compareAndSwap('/k/e', 0, Buffer.from('5'));
    const afterCompact = await s2.list('/k/');
    const revision = s2.currentRevision();
    await s2.close();
    const s3 = await EmbeddedStore.open(file);
    assert.deepEqual(await s3.list('/k/'), afterCompact);
    assert.equal(s3.currentRevision(), revision);
    await s3.close();
  });

  test('a garbage tail and a torn last record are ignored on reopen', async () => {
    const file = path.join(dir, 'torn.log');
    const s1 = await EmbeddedStore.open(file);
    await s1.compareAndSwap('/t/a', 0, Buffer.from('kept'));
    const goodSize = (await stat(file)).size;
    await s1.compareAndSwap('/t/b', 0, Buffer.from('torn'));
    const fullSize = (await stat(file)).size;
    await s1.close();

    // Cut the last record in half: it was never acknowledged as far as the file knows.
    await truncate(file, goodSize + Math.floor((fullSize - goodSize) / 2));
    const s2 = await EmbeddedStore.open(file);
    assert.equal((await s2.get('/t/a'))?.value.toString(), 'kept');
    assert.equal(await s2.get('/t/b'), undefined);
    await s2.close();

    // Garbage after valid records: a plausible length, a wrong CRC, random bytes.
    const junk = Buffer.concat([Buffer.from([0, 0, 0, 20, 1, 2, 3, 4]), Buffer.from('not a json record at all')]);
    await appendFile(file, junk);
    const s3 = await EmbeddedStore.open(file);
    assert.equal((await s3.get('/t/a'))?.value.toString(), 'kept');
    const c = await s3.compareAndSwap('/t/c', 0, Buffer.from('after'));
    assert.ok(c.ok);
    await s3.close();

    // The tail was cut, so the write after it is readable on the next open.
    const s4 = await EmbeddedStore.open(file);
    assert.equal((await s4.get('/t/c'))?.value.toString(), 'after');
    assert.deepEqual((await s4.list('/t/')).map((kv) => kv.key), ['/t/a', '/t/c']);
    await s4.close();
  });

  test('a bad CRC in the middle: the tail is copied beside the file, the cut is logged loudly, earlier records survive', async () => {
    const file = path.join(dir, 'crc.log');
    const s1 = await EmbeddedStore.open(file);
    const ends: number[] = [];
    for (let i = 1; i <= 5; i++) {
      await s1.compareAndSwap(`/m/${i}`, 0, Buffer.from(`value-${i}`));
      ends.push((await stat(file)).size);
    }
    await s1.close();

    // Flip one payload byte of the third record: records 3, 4 and 5 are behind the bad CRC.
    const original = await readFile(file);
    const badOffset = ends[1];
    const corrupted = Buffer.from(original);
    corrupted[badOffset + 8 + 3] ^= 0x01;
    await writeFile(file, corrupted);

    const log = new CapturingLogger();
    const s2 = await EmbeddedStore.open(file, { logger: log });
    try {
      // What survives: the two records before the bad one; the store keeps working after them.
      assert.deepEqual((await s2.list('/m/')).map((kv) => kv.value.toString()), ['value-1', 'value-2']);
      assert.equal(s2.currentRevision(), 2);
      assert.equal((await stat(file)).size, badOffset, 'file cut at the bad record');

      // Loudly: one error naming the file, the offset, the bytes and records dropped, and the copy.
      assert.equal(log.entries.length, 1, JSON.stringify(log.entries));
      const [entry] = log.entries;
      assert.equal(entry.level, 'error');
      assert.equal(entry.fields.file, file);
      assert.equal(entry.fields.offset, badOffset);
      assert.equal(entry.fields.droppedBytes, original.length - badOffset);
      assert.equal(entry.fields.droppedRecords, 3);
      assert.equal(entry.fields.reason, 'crc mismatch');
      assert.match(entry.message, new RegExp(`offset ${badOffset}.*${original.length - badOffset} bytes`));

      // The dropped tail is kept byte for byte beside the file.
      const copies = (await readdir(dir)).filter((name) => name.startsWith('crc.log.corrupt-'));
      assert.equal(copies.length, 1, `one copy: ${copies.join(', ')}`);
      assert.equal(entry.fields.copy, path.join(dir, copies[0]));
      assert.deepEqual(await readFile(path.join(dir, copies[0])), corrupted.subarray(badOffset));
    } finally {
      await s2.close();
    }

    // A torn last record (a crash mid-append) is also reported and copied, as a warning.
    const s3 = await EmbeddedStore.open(file, { logger: log });
    await s3.compareAndSwap('/m/6', 0, Buffer.from('value-6'));
    await s3.close();
    await truncate(file, (await stat(file)).size - 3);
    const torn = new CapturingLogger();
    const s4 = await EmbeddedStore.open(file, { logger: torn });
    await s4.close();
    assert.deepEqual(torn.entries.map((e) => [e.level, e.fields.droppedRecords]), [['warn', 1]]);
    assert.equal((await readdir(dir)).filter((name) => name.startsWith('crc.log.corrupt-')).length, 2);
  });

  test('a store that can no longer write ends its watches with an error, never silently', async () => {
    const file = path.join(dir, 'broken.log');
    const log = new CapturingLogger();
    const store = await EmbeddedStore.open(file, { logger: log });
    const events: string[] = [];
    let ended: (err: Error) => void;
    const watchError = new Promise<Error>((resolve) => {
      ended = resolve;
    });
    await store.watchPrefix('/b/', (event) => events.push(event.kv.key), { onError: (err) => ended(err) });
    await store.compareAndSwap('/b/1', 0, Buffer.from('x'));

    // The compaction's temp file cannot be created (a directory is in its way): the log cannot be rewritten.
    await mkdir(`${file}.compact`);
    await store.compact();
    const err = await within('watch error', WAIT_MS, watchError);
    assert.match(err.message, /watch \/b\/: embedded store failed: compact embedded store log: .*EISDIR/);
    assert.deepEqual(events, ['/b/1']);
    assert.ok(log.entries.some((e) => e.level === 'error' && /embedded store failed/.test(e.message)), JSON.stringify(log.entries));
    await assert.rejects(store.compareAndSwap('/b/2', 0, Buffer.from('y')), /embedded store failed/);
    await store.close();
  });

  test('after kill -9 of the writer, acknowledged writes survive and its leased keys are dropped', async () => {
    const file = path.join(dir, 'crash.log');
    const writer = startWriter(
      file,
      `const lease = await store.grantLease(30);
       await store.compareAndSwap('/c/leader', 0, Buffer.from('me'), { lease: lease.id });
       console.log('leased');
       for (let i = 0; ; i++) {
         const r = await store.compareAndSwap('/c/n' + String(i).padStart(6, '0'), 0, Buffer.from(String(i)));
         console.log('ack ' + i + ' ' + r.revision);
       }`,
    );
    // Wait for the leased key and a few acknowledged writes, then kill mid-stream.
    let acked = -1;
    let ackedRevision = 0;
    await within('writer acks', WAIT_MS, (async () => {
      for (;;) {
        const { value, done } = await writer.lines.next();
        if (done) throw new Error('writer exited early');
        const m = /^ack (\d+) (\d+)$/.exec(value);
        if (m) {
          acked = Number(m[1]);
          ackedRevision = Number(m[2]);
          if (acked >= 20) return;
        }
      }
    })());
    await writer.kill();

    const store = await EmbeddedStore.open(file);
    try {
      assert.equal(await store.get('/c/leader'), undefined, 'key of the dead holder lease is gone');
      const ns = await store.list('/c/n');
      assert.ok(ns.length >= acked + 1, `all ${acked + 1} acknowledged writes present (found ${ns.length})`);
      for (let i = 0; i <= acked; i++) assert.equal(ns[i].value.toString(), String(i));
      assert.ok(store.currentRevision() > ackedRevision, 'dropping the leased key is a new revision');
    } finally {
      await store.close();
    }
  });

  test('a file held by another live process is refused, and taken over once that process is gone', async () => {
    const file = path.join(dir, 'locked.log');
    const holder = startWriter(file, `console.log('open'); setInterval(() => {}, 1000);`);
    try {
      const first = await within('holder open', WAIT_MS, holder.lines.next());
      assert.equal(first.value, 'open');
      await assert.rejects(EmbeddedStore.open(file), /in use by pid \d+/);
    } finally {
      await holder.kill();
    }
    const store = await EmbeddedStore.open(file);
    await store.close();
  });

  test('a second open of the same file in one process is refused', async () => {
    const file = path.join(dir, 'twice.log');
    const s1 = await EmbeddedStore.open(file);
    await assert.rejects(EmbeddedStore.open(file), /already open/);
    await s1.close();
    const s2 = await EmbeddedStore.open(file);
    await s2.close();
  });
});
