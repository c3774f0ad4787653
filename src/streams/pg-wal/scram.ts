// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL uses it: the user name
// comes from the startup message (the SCRAM "n=" is empty), no channel
// binding is offered, 4096 PBKDF2 iterations. Both ends: the server side for
// the walsender endpoint, the client side for the replication connection.

import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** SASL mechanism name. */
export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
/** PBKDF2 iterations (PostgreSQL's default scram_iterations). */
const SCRAM_ITERATIONS = 4096;
const NONCE_BYTES = 18;

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

function sha256(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/** SASLprep approximated by NFKC (exact for the ASCII passwords in use). */
function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
}

/** Parse "k=v,k=v" attributes; values may contain '='. */
function attributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0], part.slice(2));
  }
  return out;
}

/** Server-side secrets of one password: salt, StoredKey, ServerKey. */
export interface ScramSecret {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Bytes of a SCRAM salt. */
const SALT_BYTES = 16;

function secretOf(salt: Buffer, salted: Buffer): ScramSecret {
  return { salt, iterations: SCRAM_ITERATIONS, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key') };
}

/**
 * Derive the secret the server keeps for a password (random salt). PBKDF2
 * runs on libuv's thread pool, never on the event loop: a server computes
 * each configured user's secret once, at start.
 */
export async function scramSecret(password: string): Promise<ScramSecret> {
  const salt = randomBytes(SALT_BYTES);
  return secretOf(salt, await pbkdf2Async(password.normalize('NFKC'), salt, SCRAM_ITERATIONS, 32, 'sha256'));
}

/**
 * A stand-in secret for a user the server does not know: salt and keys are
 * HMACs of the user name under a per-process key, so the exchange costs what
 * a known user's costs (no PBKDF2 at all) and repeated attempts see the same
 * salt, and an unknown name cannot be told from a known one (PostgreSQL's
 * scram_mock_salt does the same). No proof ever matches it.
 */
export function mockScramSecret(key: Buffer, user: string): ScramSecret {
  const salted = hmac(key, `salted\0${user}`);
  return secretOf(hmac(key, `salt\0${user}`).subarray(0, SALT_BYTES), salted);
}

/** Server half of one SCRAM exchange. Errors mean "authentication failed". */
export class ScramServer {
  #secret: ScramSecret;
  #nonce = '';
  #clientFirstBare = '';
  #serverFirst = '';
  #gs2Header = '';

  constructor(secret: ScramSecret) {
    this.#secret = secret;
  }

  /** Take client-first-message, return server-first-message. */
  first(clientFirst: string): string {
    // gs2 header: "n,," or "y,," (client could bind, server offered none).
    const m = /^([ny]),(a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (!m) throw new Error('malformed SCRAM client-first-message');
    this.#gs2Header = `${m[1]},${m[2] ?? ''},`;
    this.#clientFirstBare = m[3];
    const clientNonce = attributes(this.#clientFirstBare).get('r');
    if (!clientNonce) throw new Error('SCRAM client nonce missing');
    this.#nonce = clientNonce + randomBytes(NONCE_BYTES).toString('base64');
    this.#serverFirst = `r=${this.#nonce},s=${this.#secret.salt.toString('base64')},i=${this.#secret.iterations}`;
    return this.#serverFirst;
  }

  /** Take client-final-message; return server-final-message or throw when the proof is wrong. */
  final(clientFinal: string): string {
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt < 0) throw new Error('SCRAM proof missing');
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs.get('c') !== Buffer.from(this.#gs2Header).toString('base64')) {
      throw new Error('SCRAM channel binding mismatch');
    }
    if (attrs.get('r') !== this.#nonce) throw new Error('SCRAM nonce mismatch');
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.#secret.storedKey, authMessage);
    if (proof.length !== clientSignature.length) throw new Error('SCRAM proof has the wrong length');
    const clientKey = xor(proof, clientSignature);
    if (!timingSafeEqual(sha256(clientKey), this.#secret.storedKey)) throw new Error('SCRAM proof mismatch');
    return `v=${hmac(this.#secret.serverKey, authMessage).toString('base64')}`;
  }
}

/** Client half of one SCRAM exchange. */
export class ScramClient {
  #password: string;
  #clientNonce = randomBytes(NONCE_BYTES).toString('base64');
  #clientFirstBare = '';
  #expectedServerSignature: Buffer | undefined;

  constructor(password: string) {
    this.#password = password;
  }

  /** client-first-message. */
  first(): string {
    this.#clientFirstBare = `n=,r=${this.#clientNonce}`;
    return `n,,${this.#clientFirstBare}`;
  }

  /** Take server-first-message, return client-final-message. */
  final(serverFirst: string): string {
    const attrs = attributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce || !nonce.startsWith(this.#clientNonce) || !salt || !(iterations > 0)) {
      throw new Error('malformed SCRAM server-first-message');
    }
    const salted = saltedPassword(this.#password, Buffer.from(salt, 'base64'), iterations);
    const clientKey = hmac(salted, 'Client Key');
    const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.#expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Check server-final-message; throws when the server did not prove it knows the password. */
  verify(serverFinal: string): void {
    const v = attributes(serverFinal).get('v');
    if (!v || !this.#expectedServerSignature || !Buffer.from(v, 'base64').equals(this.#expectedServerSignature)) {
      throw new Error('SCRAM server signature mismatch');
    }
  }
}
