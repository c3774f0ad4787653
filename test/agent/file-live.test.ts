// File mode end to end: two real agents in this process (TLS carriers on
// loopback, embedded stores), each following its own config file through
// ConfigFileWatch into Agent.reconfigure, as `dwcp agent --config` does.
// Adding a stream to both files makes it replicate while the running
// stream keeps its sender session; removing it stops it on both sides.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../src/agent/agent.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { ConfigFileWatch } from '../../src/config/config-file-watch.ts';
import { writeFederationFiles, SOURCE_REGION, DEST_REGION } from '../../src/cli/two-region.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { replicates as replicatesWithin } from '../helpers/stream-dirs.ts';

const WAIT_MS = 60_000;

const replicates = (dir: string, id: string, file: string): Promise<void> => replicatesWithin(dir, id, file, WAIT_MS);

const stream = (dir: string, id: string) => `  - id: ${id}
    kind: objects
    source: { region: ${SOURCE_REGION}, path: ${join(dir, `${id}-src`)}, scanInterval: 1s }
    destinations:
      - { region: ${DEST_REGION}, path: ${join(dir, `${id}-dst`)} }
`;


test('file mode: a stream added to the files replicates, the running one is undisturbed, a removed one stops', { timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-filelive-'));
  await mkdir(join(dir, 'one-src'), { recursive: true });
  const setup = await writeFederationFiles({ dir, carriers: 1, amstExtra: '  initialBackoff: 100ms\n  maxBackoff: 1s', streams: stream(dir, 'one') });
  const logger = pino({ level: 'warn' });
  const agents: Agent[] = [];
  const watches: ConfigFileWatch[] = [];
  try {
    for (const file of [setup.destConfig, setup.sourceConfig]) {
      const agent = await Agent.start(await loadConfig(file), { logger });
      agents.push(agent);
      const watch = new ConfigFileWatch({ path: file, onConfig: async (c) => void (await agent.reconfigure(c)), onInvalid: (err) => assert.fail(err.message), debounceMs: 50 });
      await watch.start();
      watches.push(watch);
    }
    const [dest, source] = agents;
    await replicates(dir, 'one', 'f1');
    const session = source.status().senders.find((s) => s.stream === 'one')!.session;

    // Added to both files: it replicates; "one" keeps its session.
    for (const file of [setup.destConfig, setup.sourceConfig]) await writeFile(file, (await readFile(file, 'utf8')) + stream(dir, 'two'));
    await replicates(dir, 'two', 'g1');
    await replicates(dir, 'one', 'f2');
    assert.equal(source.status().senders.find((s) => s.stream === 'one')!.session, session);

    // Removed from both: it stops on both sides.
    for (const file of [setup.destConfig, setup.sourceConfig]) await writeFile(file, (await readFile(file, 'utf8')).replace(stream(dir, 'two'), ''));
    await waitFor('two stopped', async () => !source.status().senders.some((s) => s.stream === 'two') && !dest.status().receivers.some((r) => r.streamId === 'two'), WAIT_MS, 100);
    await replicates(dir, 'one', 'f3');
    assert.equal(source.status().senders.find((s) => s.stream === 'one')!.session, session);
  } finally {
    for (const w of watches) w.close();
    await Promise.allSettled(agents.map((a) => a.stop()));
    await rm(dir, { recursive: true, force: true });
  }
});
