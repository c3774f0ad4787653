// The QUIC server's identity proof. @currentspace/http3 0.9.0 verifies a
// server certificate on the client only together with a DNS host name
// (quiche sets the SNI as the name to check; our certificates carry a
// dwcp:// URI SAN and no DNS name), and it does not hand the client the
// server's certificate. So the dialer skips the library's check and the
// server proves itself on the carrier's stream, before the Hello:
//
//   dialer -> server: request {nonce}
//   server -> dialer: proof   {chain, signature}
//
// The signature is made with the server's TLS key over a label, the nonce
// and the SHA-256 of the client certificate the server verified in this
// QUIC handshake. The dialer checks the chain against its CA, the leaf's
// URI SAN against the region dialed, and that the signed client
// certificate is its own: a relay in the middle (even one holding another
// agent's certificate) cannot present the dialer's certificate to the real
// server, so the proof it could relay names the wrong client.

import { X509Certificate, createHash, createPrivateKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { certificateIdentity, serverIdentityProblem, type AgentName } from '../peer-identity.ts';

/** Bytes of the dialer's nonce. */
export const PROOF_NONCE_BYTES = 32;

/** Largest proof message accepted, bytes (a chain of a few certificates). */
export const PROOF_MAX_FRAME_BYTES = 16 * 1024;

/** Most certificates accepted in a server's chain (leaf and intermediates). */
export const PROOF_MAX_CHAIN_LENGTH = 4;

/** What the signature covers first, so it cannot be replayed as another protocol's signature. */
const PROOF_LABEL = Buffer.from('dwcp quic server proof v1\0');

/** The dialer's request: a fresh nonce. */
export interface ProofRequest {
  nonce: Buffer;
}

/** The server's answer: its certificate chain (DER, leaf first) and the signature. */
export interface ServerProof {
  chain: Buffer[];
  signature: Buffer;
}

/** A proof that did not hold; the message names what was wrong. */
export class ProofError extends Error {
  override name = 'ProofError';
}

/** A new request with a random nonce. */
export function newProofRequest(): ProofRequest {
  return { nonce: randomBytes(PROOF_NONCE_BYTES) };
}

/** Encode a request as a frame body. */
export function encodeProofRequest(request: ProofRequest): Buffer {
  return Buffer.from(JSON.stringify({ nonce: request.nonce.toString('base64') }));
}

/** Decode a request frame body; throws ProofError naming what was malformed. */
export function decodeProofRequest(body: Buffer): ProofRequest {
  const value = parseObject(body, 'proof request');
  const nonce = base64Field(value, 'nonce', 'proof request');
  if (nonce.length !== PROOF_NONCE_BYTES) throw new ProofError(`proof request: nonce has ${nonce.length} bytes, expected ${PROOF_NONCE_BYTES}`);
  return { nonce };
}

/** Encode a proof as a frame body. */
export function encodeServerProof(proof: ServerProof): Buffer {
  return Buffer.from(JSON.stringify({ chain: proof.chain.map((c) => c.toString('base64')), signature: proof.signature.toString('base64') }));
}

/** Decode a proof frame body; throws ProofError naming what was malformed. */
export function decodeServerProof(body: Buffer): ServerProof {
  const value = parseObject(body, 'server proof');
  const chain = value.chain;
  if (!Array.isArray(chain) || chain.length === 0 || chain.length > PROOF_MAX_CHAIN_LENGTH) {
    throw new ProofError(`server proof: chain must list 1 to ${PROOF_MAX_CHAIN_LENGTH} certificates`);
  }
  const der = chain.map((c, i) => {
    if (typeof c !== 'string') throw new ProofError(`server proof: chain[${i}] is not base64 text`);
    return Buffer.from(c, 'base64');
  });
  return { chain: der, signature: base64Field(value, 'signature', 'server proof') };
}

/** The server's side: sign the nonce and the client certificate it verified, with its TLS key. */
export function signServerProof(request: ProofRequest, clientCertDer: Buffer, certPem: Buffer, keyPem: Buffer): ServerProof {
  const key = createPrivateKey(keyPem);
  const chain = pemCertificates(certPem).map((c) => c.raw);
  return { chain, signature: sign(digestFor(key), signedBytes(request.nonce, clientCertDer), key) };
}

/**
 * The dialer's side: the chain must lead to a certificate of the CA bundle,
 * be valid now, name an agent of `federation` in `region`, and have signed
 * this request's nonce and the dialer's own certificate. Returns the agent
 * the server certificate names; throws ProofError saying what did not hold.
 */
export function verifyServerProof(proof: ServerProof, request: ProofRequest, ownCertPem: Buffer, caPem: Buffer, federation: string, region: string, now = new Date()): AgentName {
  // The chain, leaf first, each signed by the next, the last by a CA of the bundle.
  let chain: X509Certificate[];
  try {
    chain = proof.chain.map((der) => new X509Certificate(der));
  } catch (err) {
    throw new ProofError(`server proof: a chain certificate cannot be parsed: ${(err as Error).message}`);
  }
  const anchors = pemCertificates(caPem);
  for (const [i, cert] of chain.entries()) {
    if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) throw new ProofError(`server certificate ${i} (${cert.subject.replace(/\n/g, ', ')}) is not valid now (${cert.validFrom} .. ${cert.validTo})`);
    if (i > 0 && !cert.ca) throw new ProofError(`server chain certificate ${i} is not a CA`);
    const issuer = i + 1 < chain.length ? [chain[i + 1]] : anchors;
    if (!issuer.some((c) => c.ca && cert.checkIssued(c) && cert.verify(c.publicKey))) {
      throw new ProofError(i + 1 < chain.length ? `server chain certificate ${i} is not signed by certificate ${i + 1}` : 'server certificate is not signed by this federation\'s CA');
    }
  }
  const anchor = anchors.find((c) => chain[chain.length - 1].checkIssued(c));
  if (anchor && (now < new Date(anchor.validFrom) || now > new Date(anchor.validTo))) throw new ProofError('the CA that signed the server certificate is not valid now');

  // The leaf names the region dialed (the same check TLS carriers make in checkServerIdentity).
  const leaf = chain[0];
  const problem = serverIdentityProblem({ subjectaltname: leaf.subjectAltName } as PeerCertificate, federation, region);
  if (problem !== null) throw new ProofError(problem);

  // The leaf's key signed our nonce and our own certificate.
  const ownDer = pemCertificates(ownCertPem)[0].raw;
  if (!verify(digestFor(leaf.publicKey), signedBytes(request.nonce, ownDer), leaf.publicKey, proof.signature)) {
    throw new ProofError('server proof signature does not cover this nonce and this client certificate (a relay, or a server without the key)');
  }
  return certificateIdentity(leaf.subjectAltName) as AgentName;
}

/** SHA-256 of a certificate in DER (what the proof binds to). */
export function certificateDigest(der: Buffer): Buffer {
  return createHash('sha256').update(der).digest();
}

// Label, nonce, digest of the client certificate.
function signedBytes(nonce: Buffer, clientCertDer: Buffer): Buffer {
  return Buffer.concat([PROOF_LABEL, nonce, certificateDigest(clientCertDer)]);
}

// Ed25519/Ed448 sign the message itself; RSA and EC keys sign its SHA-256.
function digestFor(key: KeyObject): string | null {
  return key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256';
}

// Every certificate of a PEM bundle, in order.
function pemCertificates(pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ProofError('no certificate in PEM');
  return blocks.map((b) => new X509Certificate(b));
}

// A JSON object of a bounded frame body.
function parseObject(body: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ProofError(`${what}: not JSON (${body.length} bytes)`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProofError(`${what}: not a JSON object`);
  return value as Record<string, unknown>;
}

// A base64 string field as bytes.
function base64Field(value: Record<string, unknown>, field: string, what: string): Buffer {
  const text = value[field];
  if (typeof text !== 'string') throw new ProofError(`${what}: ${field} is missing or not base64 text`);
  return Buffer.from(text, 'base64');
}
