// The Hello handshake every carrier starts with, whatever its transport.
// It runs over a Carrier whose security handshake is done and whose peer
// certificate was read by the transport: the dialer sends a Hello and
// expects an accepting HelloReply; the acceptor checks the Hello against the
// peer's certificate (peer-identity.ts), asks its owner, and answers.

import type { Carrier } from './carrier.ts';
import { frameEnvelope } from './envelope-framing.ts';
import { helloIdentityRefusal, type AgentName, type IdentityProblem } from './peer-identity.ts';
import type { Identity, ListenOptions } from './transport.ts';
import { PROTOCOL_VERSION, type Envelope, type Hello, type HelloReply } from '../wire/messages.ts';

/** Default time allowed for connect + security handshake + Hello, ms. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** How long a refused carrier stays open so the refusal reaches the peer, ms. */
const REFUSAL_LINGER_MS = 1_000;

/** The handshake was refused or broken. */
export class HandshakeError extends Error {
  override name = 'HandshakeError';
}

/** What the dialer says in its Hello. */
export interface HelloRequest {
  identity: Identity;
  linkId: string;
  index: number;
  timeoutMs: number;
}

/** Dialer's side: send the Hello, wait for an accepting reply (`what` names the dial in errors). */
export async function dialHello(carrier: Carrier, request: HelloRequest, what: string): Promise<HelloReply> {
  const first = await firstMessage(carrier, request.timeoutMs, what, () => {
    carrier.write(frameEnvelope({
      hello: {
        protocolVersion: PROTOCOL_VERSION,
        federation: request.identity.federation,
        region: request.identity.region,
        nodeId: request.identity.nodeId,
        capabilities: request.identity.capabilities,
        linkId: request.linkId,
        carrierIndex: request.index,
      },
    }));
  });
  const reply = first.helloReply;
  if (!reply) {
    carrier.close('expected HelloReply');
    throw new HandshakeError(`${what}: peer answered without a HelloReply`);
  }
  if (!reply.accepted) {
    carrier.close('refused by peer');
    throw new HandshakeError(`${what}: refused: ${reply.refusal}`);
  }
  carrier.handshakeDone();
  return reply;
}

/**
 * Acceptor's side, on a carrier whose peer certificate named `certified` (or
 * a sentence saying why it names no agent): wait for the Hello, decide,
 * answer, then hand the carrier to onCarrier or report the refusal.
 */
export function acceptHello(carrier: Carrier, certified: AgentName | string, remote: string, options: ListenOptions): void {
  firstMessage(carrier, options.handshakeTimeoutMs, `accept ${remote}`, () => {}).then(
    (first) => {
      const decision: HelloDecision = first.hello ? decideHello(first.hello, certified, options) : { refusal: 'first message was not a Hello' };
      const refusal = 'refusal' in decision ? decision.refusal : null;
      const reply: HelloReply = {
        accepted: refusal === null,
        refusal: refusal ?? '',
        protocolVersion: PROTOCOL_VERSION,
        federation: options.identity.federation,
        region: options.identity.region,
        nodeId: options.identity.nodeId,
        capabilities: options.identity.capabilities,
      };
      carrier.write(frameEnvelope({ helloReply: reply }));
      if ('refusal' in decision) {
        options.onRefused(`handshake refused: ${decision.refusal}`, remote, decision.problem);
        // Let the refusal reach the peer before closing; drop whatever it sends meanwhile.
        carrier.attach({ onMessage: () => {}, onClose: () => {} });
        setTimeout(() => carrier.close(`refused: ${decision.refusal}`), REFUSAL_LINGER_MS).unref();
        return;
      }
      carrier.handshakeDone();
      options.onCarrier(carrier, decision.hello, decision.peer);
    },
    (err: Error) => options.onRefused(err.message, remote),
  );
}

/** A Hello's fate: accepted from a certified peer, or a refusal (with the identity problem when that was it). */
type HelloDecision = { hello: Hello; peer: AgentName } | { refusal: string; problem?: IdentityProblem };

// Protocol checks, then the Hello against the certificate, then the owner's admit.
function decideHello(hello: Hello, certified: AgentName | string, options: ListenOptions): HelloDecision {
  const protocol = helloRefusal(hello, options.identity);
  if (protocol !== null) return { refusal: protocol };
  if (typeof certified === 'string') return { refusal: `identity: ${certified}`, problem: 'no_identity' };
  const identity = helloIdentityRefusal(hello, certified, options.identity);
  if (identity !== null) return { refusal: `identity: ${identity.message}`, problem: identity.problem };
  const admitted = options.admit(hello, certified);
  return admitted === null ? { hello, peer: certified } : { refusal: admitted };
}

/** Protocol-level checks every Hello must pass. */
function helloRefusal(hello: Hello, identity: Identity): string | null {
  if (hello.protocolVersion !== PROTOCOL_VERSION) {
    return `protocol version ${hello.protocolVersion} is not supported (this agent speaks ${PROTOCOL_VERSION})`;
  }
  if (hello.federation !== identity.federation) {
    return `federation "${hello.federation}" does not match this agent's federation "${identity.federation}"`;
  }
  if (!hello.linkId) return 'hello has no link id';
  return null;
}

/** Wait for the first message on a fresh carrier, then detach so the owner can attach. */
function firstMessage(carrier: Carrier, timeoutMs: number, what: string, start: () => void): Promise<Envelope> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      carrier.close('handshake timeout');
      reject(new HandshakeError(`${what}: no handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    carrier.attach({
      onMessage(envelope) {
        clearTimeout(timer);
        carrier.detach();
        resolve(envelope);
      },
      onClose(info) {
        clearTimeout(timer);
        reject(new HandshakeError(`${what}: ${info.reason}`));
      },
    });
    start();
  });
}
