// The QUIC server proof as data (server-proof.ts): what the dialer accepts
// and why it refuses, with real certificates from the dev PKI. The proof is
// bound to the nonce and to the dialer's own certificate, so a relay cannot
// pass on a proof made for its own connection.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProofRequest, decodeServerProof, encodeProofRequest, encodeServerProof, newProofRequest, signServerProof, verifyServerProof } from '../../src/transport/quic/server-proof.ts';
import { X509Certificate } from 'node:crypto';
import { makePki, removePki, type QuicPki } from '../helpers/quic-fixture.ts';

let pki: QuicPki;

before(async () => {
  pki = await makePki();
});

after(async () => {
  await removePki(pki);
});

const der = (pem: Buffer): Buffer => new X509Certificate(pem).raw;

test('a proof for this nonce and this client certificate names the server; it survives encoding', () => {
  const { server, client } = pki.material;
  const request = decodeProofRequest(encodeProofRequest(newProofRequest()));
  const proof = decodeServerProof(encodeServerProof(signServerProof(request, der(client.cert), server.cert, server.key)));
  assert.deepEqual(verifyServerProof(proof, request, client.cert, client.ca, 'fed', 'region-a'), { federation: 'fed', region: 'region-a', node: 'node-a' });
});

test('a proof made for another client (a relay in the middle) or another nonce (a replay) is refused', () => {
  const { server, client, otherRegion } = pki.material;
  const request = newProofRequest();
  const relayed = signServerProof(request, der(otherRegion.cert), server.cert, server.key);
  assert.throws(() => verifyServerProof(relayed, request, client.cert, client.ca, 'fed', 'region-a'), /does not cover this nonce and this client certificate/);
  const replayed = signServerProof(newProofRequest(), der(client.cert), server.cert, server.key);
  assert.throws(() => verifyServerProof(replayed, request, client.cert, client.ca, 'fed', 'region-a'), /does not cover this nonce/);
});

test('a proof whose chain is of another CA, names another region, is expired, or was signed with another key is refused', () => {
  const { server, client, otherCa, otherRegion } = pki.material;
  const request = newProofRequest();
  const fromOtherCa = signServerProof(request, der(client.cert), otherCa.cert, otherCa.key);
  assert.throws(() => verifyServerProof(fromOtherCa, request, client.cert, client.ca, 'fed', 'region-b'), /not signed by this federation's CA/);
  const good = signServerProof(request, der(client.cert), server.cert, server.key);
  assert.throws(() => verifyServerProof(good, request, client.cert, client.ca, 'fed', 'region-c'), /not an agent of federation "fed" region "region-c"/);
  assert.throws(() => verifyServerProof(good, request, client.cert, client.ca, 'other', 'region-a'), /not an agent of federation "other"/);
  const later = new Date(Date.now() + 30 * 24 * 3600 * 1000);
  assert.throws(() => verifyServerProof(good, request, client.cert, client.ca, 'fed', 'region-a', later), /is not valid now/);
  // Certificate of region-a, signature by region-c's key.
  const stolenCert = { chain: good.chain, signature: signServerProof(request, der(client.cert), otherRegion.cert, otherRegion.key).signature };
  assert.throws(() => verifyServerProof(stolenCert, request, client.cert, client.ca, 'fed', 'region-a'), /signature does not cover/);
});

test('malformed requests and proofs are refused naming what was wrong', () => {
  assert.throws(() => decodeProofRequest(Buffer.from('GET / HTTP/1.1')), /proof request: not JSON/);
  assert.throws(() => decodeProofRequest(Buffer.from('{"nonce":"AAAA"}')), /nonce has 3 bytes, expected 32/);
  assert.throws(() => decodeProofRequest(Buffer.from('[1]')), /not a JSON object/);
  assert.throws(() => decodeServerProof(Buffer.from('{"chain":[],"signature":""}')), /chain must list 1 to 4 certificates/);
  assert.throws(() => decodeServerProof(Buffer.from('{"chain":[1],"signature":""}')), /chain\[0\] is not base64 text/);
  const request = newProofRequest();
  const { client } = pki.material;
  assert.throws(() => verifyServerProof({ chain: [Buffer.from('junk')], signature: Buffer.alloc(64) }, request, client.cert, client.ca, 'fed', 'region-a'), /a chain certificate cannot be parsed/);
});
