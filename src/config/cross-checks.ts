// Rules that span fields and that a JSON Schema cannot say: names unique,
// regions listed, kind-specific fields present or absent. They read the
// input defensively so they can run even when the schema found problems,
// and every problem of a file is reported at once.

import { isIP } from 'node:net';
import type { ConfigIssue } from './config-error.ts';
import { DEFAULTS } from './schema.ts';
import { parseDuration, parseSize } from './units.ts';
import { ENDPOINT_PATTERN, parseEndpoint } from '../transport/endpoint.ts';

/** Endpoints of the right shape (the schema reports the others). */
const ENDPOINT_SHAPE = new RegExp(ENDPOINT_PATTERN);

/** Cross-field problems of a (possibly invalid) config input. */
export function crossCheckIssues(input: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const root = record(input);
  if (!root) return issues;

  // Regions: unique names, this agent's region among them, sane endpoints.
  const regionNames = checkRegions(list(root.regions), issues);
  const known = `(known: ${[...regionNames].join(', ')})`;
  const isKnown = (name: unknown) => typeof name !== 'string' || regionNames.size === 0 || regionNames.has(name);
  if (!isKnown(root.region)) issues.push({ path: 'region', message: `unknown region "${root.region}" ${known}` });

  // Streams: unique ids, then each stream's own rules.
  const ids = new Map<string, number>();
  list(root.streams).forEach((raw, i) => {
    const stream = record(raw);
    if (!stream) return;
    if (typeof stream.id === 'string') {
      const first = ids.get(stream.id);
      if (first !== undefined) issues.push({ path: `streams[${i}].id`, message: `duplicate stream id "${stream.id}" (also streams[${first}])` });
      else ids.set(stream.id, i);
    }
    checkStream(stream, `streams[${i}]`, isKnown, known, issues);
  });

  // ACP and AMST rules.
  checkAcp(record(root.acp), issues);
  checkAmst(record(root.amst), issues);
  return issues;
}

// Region names must be unique and endpoint ports real; returns the names.
function checkRegions(regions: unknown[], issues: ConfigIssue[]): Set<string> {
  const names = new Map<string, number>();
  regions.forEach((raw, i) => {
    const region = record(raw);
    if (!region) return;
    if (typeof region.name === 'string') {
      const first = names.get(region.name);
      if (first !== undefined) issues.push({ path: `regions[${i}].name`, message: `duplicate region "${region.name}" (also regions[${first}])` });
      else names.set(region.name, i);
    }
    list(region.endpoints).forEach((endpoint, j) => {
      // The shape is the schema's to report; what is left here is the port's range.
      if (typeof endpoint !== 'string' || !ENDPOINT_SHAPE.test(endpoint)) return;
      const parsed = parseEndpoint(endpoint);
      if (typeof parsed === 'string') issues.push({ path: `regions[${i}].endpoints[${j}]`, message: parsed, value: endpoint });
    });
  });
  return new Set(names.keys());
}

// One stream: listed regions, no loops, and the fields its kind needs.
function checkStream(
  stream: Record<string, unknown>,
  at: string,
  isKnown: (name: unknown) => boolean,
  known: string,
  issues: ConfigIssue[],
): void {
  const source = record(stream.source);
  const sourceRegion = source?.region;
  if (!isKnown(sourceRegion)) issues.push({ path: `${at}.source.region`, message: `unknown region "${sourceRegion}" ${known}` });

  // Destinations: listed, not the source, each region once.
  const seen = new Map<string, number>();
  list(stream.destinations).forEach((raw, j) => {
    const destination = record(raw);
    const region = destination?.region;
    if (typeof region !== 'string') return;
    const path = `${at}.destinations[${j}].region`;
    if (!isKnown(region)) issues.push({ path, message: `unknown region "${region}" ${known}` });
    else if (region === sourceRegion) issues.push({ path, message: `must differ from the source region "${region}"` });
    else if (seen.has(region)) issues.push({ path, message: `duplicate destination region "${region}" (also destinations[${seen.get(region)}])` });
    seen.set(region, j);
  });

  // Kind-specific fields.
  if (stream.kind === 'objects') checkObjectsStream(source, list(stream.destinations), at, issues);
  if (stream.kind === 'pg-wal') checkPgWalStream(source, list(stream.destinations), at, issues);
  // A WAL is one ordered history: it cannot be split by path.
  if (stream.kind === 'pg-wal' && stream.shards !== undefined) issues.push({ path: `${at}.shards`, message: 'is only for kind objects' });
}

// objects: paths required, PostgreSQL fields refused.
function checkObjectsStream(source: Record<string, unknown> | undefined, destinations: unknown[], at: string, issues: ConfigIssue[]): void {
  if (source) {
    if (source.path === undefined) issues.push({ path: `${at}.source.path`, message: 'is required for kind objects' });
    for (const field of ['connection', 'slot', 'synchronous', 'applicationName']) {
      if (source[field] !== undefined) issues.push({ path: `${at}.source.${field}`, message: 'is only for kind pg-wal' });
    }
  }
  destinations.forEach((raw, j) => {
    const destination = record(raw);
    if (!destination) return;
    if (destination.path === undefined) issues.push({ path: `${at}.destinations[${j}].path`, message: 'is required for kind objects' });
    if (destination.walsender !== undefined) issues.push({ path: `${at}.destinations[${j}].walsender`, message: 'is only for kind pg-wal' });
  });
}

// pg-wal: a connection required, directory-scan fields refused, trust lists valid.
function checkPgWalStream(source: Record<string, unknown> | undefined, destinations: unknown[], at: string, issues: ConfigIssue[]): void {
  if (source) {
    if (source.connection === undefined) issues.push({ path: `${at}.source.connection`, message: 'is required for kind pg-wal' });
    for (const field of ['path', 'scanInterval', 'watch']) {
      if (source[field] !== undefined) issues.push({ path: `${at}.source.${field}`, message: 'is only for kind objects' });
    }
  }
  destinations.forEach((raw, j) => {
    const walsender = record(record(raw)?.walsender);
    list(walsender?.trust).forEach((cidr, k) => {
      if (typeof cidr === 'string' && !validCidr(cidr)) {
        issues.push({ path: `${at}.destinations[${j}].walsender.trust[${k}]`, message: 'must be an address/prefix like 127.0.0.1/32', value: cidr });
      }
    });
  });
}

// etcd needs endpoints; embedded-only and etcd-only fields stay apart.
function checkAcp(acp: Record<string, unknown> | undefined, issues: ConfigIssue[]): void {
  if (!acp) return;
  const endpoints = list(acp.endpoints);
  if (acp.backend === 'etcd') {
    if (endpoints.length === 0) issues.push({ path: 'acp.endpoints', message: 'must not be empty when backend is etcd', value: acp.endpoints ?? [] });
    if (acp.path !== undefined) issues.push({ path: 'acp.path', message: 'is only for backend embedded' });
  } else if (acp.backend === undefined || acp.backend === 'embedded') {
    if (endpoints.length > 0) issues.push({ path: 'acp.endpoints', message: 'is only for backend etcd' });
    if (acp.tls !== undefined) issues.push({ path: 'acp.tls', message: 'is only for backend etcd' });
  }
}

// Backoff and frame limits must fit each other (defaults count too).
function checkAmst(amst: Record<string, unknown> | undefined, issues: ConfigIssue[]): void {
  if (!amst) return;
  const d = DEFAULTS.amst;
  checkNotAbove(parseDuration, amst, 'initialBackoff', d.initialBackoff, 'maxBackoff', d.maxBackoff, issues);
  // A frame larger than the link window could never be sent.
  checkNotAbove(parseSize, amst, 'maxFrame', d.maxFrame, 'linkWindow', d.linkWindow, issues);
}

// amst[low] (or its default) must not exceed amst[high] (or its default).
function checkNotAbove(
  parse: (value: string | number) => number,
  amst: Record<string, unknown>,
  low: string,
  lowDefault: string,
  high: string,
  highDefault: string,
  issues: ConfigIssue[],
): void {
  const lowValue = amst[low] ?? lowDefault;
  const highValue = amst[high] ?? highDefault;
  const a = tryParse(parse, lowValue);
  const b = tryParse(parse, highValue);
  if (a !== undefined && b !== undefined && a > b) {
    issues.push({ path: `amst.${low}`, message: `must not exceed amst.${high} (${String(highValue)})`, value: lowValue });
  }
}

// A parsed unit value, or undefined when absent or invalid (the schema reports that).
function tryParse(parse: (value: string | number) => number, value: unknown): number | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  try {
    return parse(value);
  } catch {
    return undefined;
  }
}

// "address/prefix" with a prefix the address family allows.
function validCidr(text: string): boolean {
  const slash = text.lastIndexOf('/');
  const family = isIP(text.slice(0, slash));
  const prefix = Number(text.slice(slash + 1));
  return slash > 0 && family !== 0 && Number.isInteger(prefix) && prefix >= 0 && prefix <= (family === 4 ? 32 : 128);
}

// The value as a plain object, or undefined.
function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

// The value as an array, or empty.
function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
