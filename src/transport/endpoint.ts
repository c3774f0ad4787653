// Endpoint syntax: where a region's agents accept carriers, and of which
// kind. `tls://host:port` (or plain `host:port`) for TCP+TLS,
// `wss://host:port/path` for WebSocket over TLS (through HTTP proxies), and
// `quic://host:port` for QUIC. IPv6 hosts are written in brackets.

import type { Endpoint, TransportKind } from './transport.ts';

/** Largest TCP/UDP port. */
const PORT_MAX = 65_535;

/** URL scheme of each transport kind. */
export const ENDPOINT_SCHEMES: Record<TransportKind, string> = { tls: 'tls', ws: 'wss', quic: 'quic' };

/** JSON Schema pattern of an endpoint (the shape; ports and paths are checked by parseEndpoint). */
export const ENDPOINT_PATTERN = '^((tls|quic)://)?(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$|^wss://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9_.-]+):[0-9]{1,5}(/[A-Za-z0-9_.~!$&\'()*+,;=:@%/-]*)?$';

/** What an endpoint must look like, for error messages. */
export const ENDPOINT_FORMS = 'host:port, tls://host:port, wss://host:port/path or quic://host:port (IPv6 hosts in brackets)';

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})(\/.*)?$/;

/** Parse one endpoint; a string says what is wrong with it (lowercase, for a config issue). */
export function parseEndpoint(text: string): Endpoint | string {
  // Scheme: none means tls.
  const schemeEnd = text.indexOf('://');
  const scheme = schemeEnd < 0 ? 'tls' : text.slice(0, schemeEnd);
  const kind = (Object.keys(ENDPOINT_SCHEMES) as TransportKind[]).find((k) => ENDPOINT_SCHEMES[k] === scheme);
  if (!kind) {
    const hint = scheme === 'ws' ? ' (plain ws:// is not offered: carriers always run over TLS, use wss://)' : '';
    return `scheme "${scheme}://" is not one of tls://, wss://, quic://${hint}`;
  }
  // Host, port and (wss only) a path.
  const rest = schemeEnd < 0 ? text : text.slice(schemeEnd + 3);
  const match = HOST_PORT.exec(rest);
  if (!match) return `must be ${ENDPOINT_FORMS}`;
  const port = Number(match[2]);
  if (port < 1 || port > PORT_MAX) return `port must be in 1..${PORT_MAX}`;
  const path = match[3];
  if (path !== undefined && kind !== 'ws') return `a path is only for wss:// endpoints`;
  const host = match[1].replace(/^\[(.*)\]$/, '$1');
  return kind === 'ws' ? { kind, host, port, path: path ?? '/' } : { kind, host, port };
}

/** The endpoint written as a URL (for logs and errors): `tls://10.0.0.1:7400`, `wss://[::1]:443/dwcp`. */
export function formatEndpoint(endpoint: Endpoint): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${ENDPOINT_SCHEMES[endpoint.kind]}://${host}:${endpoint.port}${endpoint.kind === 'ws' ? endpoint.path ?? '/' : ''}`;
}
