// Certificate-bound identity. An agent's certificate names its federation,
// region and node in one URI subject alternative name,
//   dwcp://<federation>/<region>/<node>
// (each part percent-encoded). A peer is what its certificate says, never
// what its Hello claims: the acceptor checks the Hello against the client
// certificate, the dialer checks that the server's certificate names the
// federation and the region it dialed.

import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';

/** URI scheme of the identity SAN. */
export const IDENTITY_URI_SCHEME = 'dwcp';

/** Who an agent is, as its certificate names it. */
export interface AgentName {
  federation: string;
  region: string;
  node: string;
}

/** Why a peer was refused at the Hello (the metric label). */
export type IdentityProblem = 'no_identity' | 'federation' | 'region' | 'node' | 'own_region';

/** A refusal of a peer's identity: a metric label and a message for logs and the HelloReply. */
export interface IdentityRefusal {
  problem: IdentityProblem;
  message: string;
}

/** The identity SAN value for an agent (what `dwcp certs` and dev-pki put in certificates). */
export function agentUri(name: AgentName): string {
  return `${IDENTITY_URI_SCHEME}://${[name.federation, name.region, name.node].map(encodeURIComponent).join('/')}`;
}

/** Parse one identity URI; undefined when it is not a well-formed dwcp:// URI. */
export function parseAgentUri(uri: string): AgentName | undefined {
  const prefix = `${IDENTITY_URI_SCHEME}://`;
  if (!uri.startsWith(prefix)) return undefined;
  const parts = uri.slice(prefix.length).split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  try {
    const [federation, region, node] = parts.map(decodeURIComponent);
    return { federation, region, node };
  } catch {
    return undefined;
  }
}

/**
 * The URIs of a subjectAltName string as Node prints it ("DNS:a, URI:b",
 * values with special characters JSON-quoted).
 */
export function sanUris(subjectAltName: string | undefined): string[] {
  const uris: string[] = [];
  let rest = subjectAltName ?? '';
  while (rest.length > 0) {
    // One entry: TYPE ':' (quoted JSON string | text up to ', ').
    const colon = rest.indexOf(':');
    if (colon < 0) break;
    const type = rest.slice(0, colon).trim();
    rest = rest.slice(colon + 1);
    let value: string;
    if (rest.startsWith('"')) {
      const end = quotedEnd(rest);
      try {
        value = JSON.parse(rest.slice(0, end)) as string;
      } catch {
        break;
      }
      rest = rest.slice(end);
    } else {
      const comma = rest.indexOf(', ');
      value = comma < 0 ? rest : rest.slice(0, comma);
      rest = comma < 0 ? '' : rest.slice(comma);
    }
    if (type === 'URI') uris.push(value);
    rest = rest.replace(/^, /, '');
  }
  return uris;
}

// Index just past the closing quote of a JSON string starting at 0.
function quotedEnd(s: string): number {
  for (let i = 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '"') return i + 1;
  }
  return s.length;
}

/** The agent a certificate names, or a sentence saying why it names none. */
export function certificateIdentity(subjectAltName: string | undefined): AgentName | string {
  const names = sanUris(subjectAltName).filter((u) => u.startsWith(`${IDENTITY_URI_SCHEME}:`));
  if (names.length === 0) return `certificate has no ${IDENTITY_URI_SCHEME}://<federation>/<region>/<node> URI SAN`;
  if (names.length > 1) return `certificate names ${names.length} agents (${names.join(', ')}); it must name one`;
  return parseAgentUri(names[0]) ?? `certificate URI SAN "${names[0]}" is not ${IDENTITY_URI_SCHEME}://<federation>/<region>/<node>`;
}

/** The agent a PEM certificate names (for checking this agent's own certificate). */
export function pemIdentity(pem: Buffer): AgentName | string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    return `certificate cannot be parsed: ${(err as Error).message}`;
  }
  return certificateIdentity(cert.subjectAltName);
}

/** Why a certificate's identity is not `own` (this agent's config), or null when it names exactly that agent. */
export function ownIdentityProblem(named: AgentName | string, own: AgentName): string | null {
  if (typeof named === 'string') return `${named} (expected ${agentUri(own)})`;
  if (named.federation !== own.federation || named.region !== own.region || named.node !== own.node) {
    return `certificate names ${agentUri(named)}, but this agent is ${agentUri(own)}`;
  }
  return null;
}

/** The identity of a TLS peer from its certificate (empty object when none was presented). */
export function peerCertificateIdentity(cert: PeerCertificate | undefined): AgentName | string {
  if (!cert || Object.keys(cert).length === 0) return 'peer presented no certificate';
  return certificateIdentity(cert.subjectaltname);
}

/**
 * Acceptor's check: the Hello must claim exactly what the client certificate
 * names, of this federation, and not this agent's own region (links join
 * different regions). A certificate naming no agent is refused before this
 * (problem no_identity).
 */
export function helloIdentityRefusal(claimed: { federation: string; region: string; nodeId: string }, certified: AgentName, own: { federation: string; region: string }): IdentityRefusal | null {
  const uri = agentUri(certified);
  if (certified.federation !== own.federation) return { problem: 'federation', message: `certificate names federation "${certified.federation}" (${uri}), not this agent's federation "${own.federation}"` };
  if (certified.region !== claimed.region) return { problem: 'region', message: `hello claims region "${claimed.region}" but the certificate names region "${certified.region}" (${uri})` };
  if (certified.node !== claimed.nodeId) return { problem: 'node', message: `hello claims node "${claimed.nodeId}" but the certificate names node "${certified.node}" (${uri})` };
  if (certified.region === own.region) return { problem: 'own_region', message: `certificate names this agent's own region "${own.region}" (${uri}); links join different regions` };
  return null;
}

/** Dialer's check: the server's certificate must name the federation and the region dialed. */
export function serverIdentityProblem(cert: PeerCertificate | undefined, federation: string, region: string): string | null {
  const certified = peerCertificateIdentity(cert);
  if (typeof certified === 'string') return `server ${certified}`;
  if (certified.federation !== federation || certified.region !== region) {
    return `server certificate names ${agentUri(certified)}, not an agent of federation "${federation}" region "${region}" (the region dialed)`;
  }
  return null;
}
