// Certificate-bound identity at the accepting agent: a peer is what its
// certificate says, never what its Hello claims. Real agents (eu-west sends
// stream "sample" to us-east) over real TLS on loopback; the attackers hold
// certificates of the same federation CA and try to pass as eu-west. Each is
// refused at the Hello with a logged reason and a metric, writes nothing,
// leaves the checkpoint alone, and the genuine sender carries on.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFederation, type Federation } from '../helpers/federation.ts';
import { playImpostor, POISON_EPOCH, type ImpostorOutcome } from '../helpers/impostor.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { issueDevCert, type DevCert } from '../../src/cli/dev-pki.ts';
import type { AgentName } from '../../src/transport/peer-identity.ts';

const MiB = 1024 * 1024;
/** A member region with a certificate and no running agent: a real federation member of the wrong region. */
const OTHER_REGION = 'ap-south';

let fed: Federation;
let files = 0;

before(async () => {
  fed = await startFederation({ totalBytes: 2 * MiB, largestBytes: 256 * 1024, extraRegions: [OTHER_REGION] });
  await fed.waitInSync(120_000);
});

after(async () => {
  await fed?.cleanup();
});

/** Durable position of "sample" at us-east (its checkpoint), once everything applied is checkpointed. */
async function durableSeq(): Promise<number> {
  let seq = -1;
  await waitFor('the checkpoint to catch up with what was applied', async () => {
    const r = (await fed.dest.status()).receivers.find((x) => x.streamId === 'sample');
    seq = r?.durableSeq ?? -1;
    return r !== undefined && r.durableSeq === r.appliedSeq;
  }, 10_000, 50);
  return seq;
}

/** The genuine eu-west sender still gets a new file through (its epoch was not fenced, its link not kicked). */
async function genuineContinues(): Promise<void> {
  const name = `genuine-${++files}.txt`;
  await writeFile(join(fed.sourcePath, name), `written by eu-west ${files}\n`);
  await waitFor(`${name} replicated by the genuine sender`, async () => (await readFile(join(fed.destPath, name), 'utf8').catch(() => '')) === `written by eu-west ${files}\n`, 60_000, 200);
}

/** A certificate of the demo CA with this identity (null: no dwcp:// SAN). */
function certFor(name: string, identity: AgentName | null): Promise<DevCert> {
  return issueDevCert(fed.setup.ca, name, identity, { dir: join(fed.dir, 'attackers') });
}

/** Play the impostor against us-east; when let in, wait until its frame was answered. */
function attack(cert: DevCert, claim: { region: string; nodeId: string }, path: string, epoch = POISON_EPOCH): Promise<ImpostorOutcome> {
  const seqs = (received: ImpostorOutcome['received']): boolean => received.some((e) => e.ack || e.nack || e.error);
  return playImpostor({
    port: fed.setup.ports.dest,
    cert,
    ...claim,
    peerRegion: 'us-east',
    streamId: 'sample',
    epoch,
    path,
    contents: 'injected by an impostor\n',
    // Give the destination time to apply (and acknowledge) or refuse the frame, so "nothing written" means something.
    afterData: (received) => waitFor('an answer to the data frame', async () => seqs(received), 10_000, 50).catch(() => {}),
  });
}

/** A "connection refused" line in us-east's log whose reason matches. */
async function refusalLogged(pattern: RegExp): Promise<void> {
  const reasons = (): string[] => fed.dest.logs.flatMap((l) => {
    const entry = JSON.parse(l) as { msg?: string; reason?: string };
    return entry.msg === 'connection refused' && entry.reason ? [entry.reason] : [];
  });
  await waitFor(`a "connection refused" log line matching ${pattern}`, async () => reasons().some((r) => pattern.test(r)), 5_000, 50);
}

test('an intruder certificate (CN=intruder, no identity SAN) claiming eu-west is refused at the Hello; nothing written, checkpoint unchanged, the genuine sender continues', async () => {
  const before = await durableSeq();
  const refusedBefore = await fed.dest.metric('dwcp_peer_identity_refusals_total', 'problem="no_identity"');
  const intruder = await certFor('intruder', null);
  const outcome = await attack(intruder, { region: 'eu-west', nodeId: 'eu-west-node-1' }, 'injected.txt');
  assert.match(outcome.helloRefusal ?? 'the Hello was accepted', /refused: identity: certificate has no dwcp:\/\/<federation>\/<region>\/<node> URI SAN/);
  await refusalLogged(/handshake refused: identity: certificate has no dwcp:/);
  assert.equal(await fed.dest.metric('dwcp_peer_identity_refusals_total', 'problem="no_identity"'), refusedBefore + 1);
  assert.equal(existsSync(join(fed.destPath, 'injected.txt')), false, 'nothing written into the sink');
  assert.equal(await durableSeq(), before, 'checkpoint unchanged');
  await genuineContinues();
});

test('certificates of another region, of another federation, of the destination itself, and of another node are each refused at the Hello with a logged reason', async () => {
  const cases: Array<{ name: string; identity: AgentName; claim: { region: string; nodeId: string }; problem: string; reason: RegExp }> = [
    { name: 'other-region', identity: { federation: 'demo', region: OTHER_REGION, node: `${OTHER_REGION}-node-1` }, claim: { region: 'eu-west', nodeId: 'eu-west-node-1' }, problem: 'region', reason: /hello claims region "eu-west" but the certificate names region "ap-south"/ },
    { name: 'other-federation', identity: { federation: 'elsewhere', region: 'eu-west', node: 'eu-west-node-1' }, claim: { region: 'eu-west', nodeId: 'eu-west-node-1' }, problem: 'federation', reason: /certificate names federation "elsewhere"/ },
    { name: 'destination-as-source', identity: { federation: 'demo', region: 'us-east', node: 'us-east-node-1' }, claim: { region: 'eu-west', nodeId: 'eu-west-node-1' }, problem: 'region', reason: /hello claims region "eu-west" but the certificate names region "us-east"/ },
    { name: 'destination-itself', identity: { federation: 'demo', region: 'us-east', node: 'us-east-node-9' }, claim: { region: 'us-east', nodeId: 'us-east-node-9' }, problem: 'own_region', reason: /certificate names this agent's own region "us-east"/ },
  ];
  for (const c of cases) {
    const before = await durableSeq();
    const refusedBefore = await fed.dest.metric('dwcp_peer_identity_refusals_total', `problem="${c.problem}"`);
    const outcome = await attack(await certFor(c.name, c.identity), c.claim, `${c.name}.txt`);
    assert.match(outcome.helloRefusal ?? `${c.name}: the Hello was accepted`, c.reason, c.name);
    await refusalLogged(c.reason);
    assert.equal(await fed.dest.metric('dwcp_peer_identity_refusals_total', `problem="${c.problem}"`), refusedBefore + 1, `${c.name}: counted as ${c.problem}`);
    assert.equal(existsSync(join(fed.destPath, `${c.name}.txt`)), false, `${c.name}: nothing written`);
    assert.equal(await durableSeq(), before, `${c.name}: checkpoint unchanged`);
  }
  await genuineContinues();
});

test("a Hello reusing the live sender's region and node without that node's certificate does not kick its link", async () => {
  const reconnectsBefore = await fed.source.metric('dwcp_link_reconnects_total');
  // A genuine eu-west certificate, but of another node.
  const sibling = await certFor('eu-west-node-2', { federation: 'demo', region: 'eu-west', node: 'eu-west-node-2' });
  const outcome = await attack(sibling, { region: 'eu-west', nodeId: 'eu-west-node-1' }, 'sibling.txt', 1);
  assert.match(outcome.helloRefusal ?? 'the Hello was accepted', /hello claims node "eu-west-node-1" but the certificate names node "eu-west-node-2"/);
  await refusalLogged(/hello claims node "eu-west-node-1"/);
  await genuineContinues();
  assert.equal(await fed.source.metric('dwcp_link_reconnects_total'), reconnectsBefore, "the genuine sender's link was never replaced");
  assert.equal(existsSync(join(fed.destPath, 'sibling.txt')), false);
});

test('a member of another region opening a stream sourced in eu-west is refused at StreamOpen, and its data frames are dropped and counted', async () => {
  const before = await durableSeq();
  const member = fed.setup.certs[OTHER_REGION];
  const outcome = await playImpostor({
    port: fed.setup.ports.dest,
    cert: member,
    region: OTHER_REGION,
    nodeId: `${OTHER_REGION}-node-1`,
    peerRegion: 'us-east',
    streamId: 'sample',
    epoch: POISON_EPOCH,
    path: 'cross-region.txt',
    contents: 'written by ap-south\n',
    afterData: () => waitFor('the data frame counted as refused', async () => (await fed.dest.metric('dwcp_stream_source_refusals_total', 'message="data"')) >= 1, 10_000, 50).catch(() => {}),
  });
  assert.equal(outcome.helloRefusal, null, 'a real member of the federation is let in');
  assert.match(outcome.openRefusal ?? 'the stream was opened', /stream "sample" is sourced in region "eu-west"; this peer is certified for region "ap-south"/);
  assert.equal(await fed.dest.metric('dwcp_stream_source_refusals_total', 'message="open"'), 1);
  assert.equal(await fed.dest.metric('dwcp_stream_source_refusals_total', 'message="data"'), 1, 'the data frame was dropped and counted');
  assert.equal(existsSync(join(fed.destPath, 'cross-region.txt')), false, 'nothing written');
  assert.equal(await durableSeq(), before, 'checkpoint unchanged');
  await genuineContinues();
});
