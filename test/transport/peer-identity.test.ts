// The identity SAN as data: what counts as naming an agent, and the
// acceptor's and dialer's verdicts. Pure functions; the tests in
// test/trust/ run the same checks between real agents.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentUri, certificateIdentity, helloIdentityRefusal, parseAgentUri, sanUris, serverIdentityProblem } from '../../src/transport/peer-identity.ts';
import type { PeerCertificate } from 'node:tls';

const own = { federation: 'prod', region: 'us-east' };

test('an identity URI round-trips, parts percent-encoded', () => {
  const name = { federation: 'prod', region: 'eu-west', node: 'ip-10-0-1-7/a b,c' };
  assert.equal(agentUri(name), 'dwcp://prod/eu-west/ip-10-0-1-7%2Fa%20b%2Cc');
  assert.deepEqual(parseAgentUri(agentUri(name)), name);
  for (const bad of ['dwcp://prod/eu-west', 'dwcp://prod//n', 'dwcp://a/b/c/d', 'https://prod/eu-west/n', 'dwcp://prod/eu-west/%E0']) {
    assert.equal(parseAgentUri(bad), undefined, bad);
  }
});

test("subjectAltName strings as Node prints them, quoted values included", () => {
  assert.deepEqual(sanUris('DNS:a.example, URI:dwcp://prod/eu-west/n1, IP Address:10.0.0.1'), ['dwcp://prod/eu-west/n1']);
  assert.deepEqual(sanUris('URI:"dwcp://prod/eu-west/n1, DNS:forged", DNS:b'), ['dwcp://prod/eu-west/n1, DNS:forged']);
  assert.deepEqual(sanUris(undefined), []);
});

test('a certificate names one agent, or says why not', () => {
  assert.deepEqual(certificateIdentity('URI:dwcp://prod/eu-west/n1'), { federation: 'prod', region: 'eu-west', node: 'n1' });
  assert.match(certificateIdentity('DNS:intruder') as string, /has no dwcp:\/\/<federation>\/<region>\/<node> URI SAN/);
  assert.match(certificateIdentity('URI:dwcp://prod/eu-west/n1, URI:dwcp://prod/us-east/n2') as string, /names 2 agents/);
  assert.match(certificateIdentity('URI:dwcp://prod/eu-west') as string, /is not dwcp:\/\/<federation>\/<region>\/<node>/);
  // A quoted value cannot smuggle a second entry in.
  assert.match(certificateIdentity('URI:"https://x, URI:dwcp://prod/eu-west/n1"') as string, /has no dwcp/);
});

test('the acceptor: the Hello must claim what the certificate names, of this federation, of another region', () => {
  const cert = { federation: 'prod', region: 'eu-west', node: 'n1' };
  const hello = { federation: 'prod', region: 'eu-west', nodeId: 'n1' };
  assert.equal(helloIdentityRefusal(hello, cert, own), null);
  assert.equal(helloIdentityRefusal(hello, { ...cert, federation: 'other' }, own)?.problem, 'federation');
  assert.equal(helloIdentityRefusal({ ...hello, region: 'ap-south' }, cert, own)?.problem, 'region');
  assert.equal(helloIdentityRefusal({ ...hello, nodeId: 'n2' }, cert, own)?.problem, 'node');
  assert.equal(helloIdentityRefusal({ ...hello, region: 'us-east' }, { ...cert, region: 'us-east' }, own)?.problem, 'own_region');
});

test('the dialer: the server certificate must name the federation and the region dialed', () => {
  const server = (san: string): PeerCertificate => ({ subjectaltname: san, subject: { CN: 'x' } }) as unknown as PeerCertificate;
  assert.equal(serverIdentityProblem(server('URI:dwcp://prod/us-east/n9'), 'prod', 'us-east'), null);
  assert.match(serverIdentityProblem(server('URI:dwcp://prod/ap-south/n9'), 'prod', 'us-east')!, /names dwcp:\/\/prod\/ap-south\/n9, not an agent of federation "prod" region "us-east"/);
  assert.match(serverIdentityProblem(server('URI:dwcp://other/us-east/n9'), 'prod', 'us-east')!, /not an agent of federation "prod"/);
  assert.match(serverIdentityProblem(server('DNS:us-east.example'), 'prod', 'us-east')!, /server certificate has no dwcp/);
  assert.match(serverIdentityProblem(undefined, 'prod', 'us-east')!, /presented no certificate/);
});
