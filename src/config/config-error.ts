// Config problems as data (ConfigIssue) and, at the public surface, one
// thrown ConfigError that lists every problem, one per line:
//   dwcp.yaml: amst.carriers: must be an integer >= 1 (got 0)
// A secret field's value (a password) is never kept or printed, whatever
// its type: only its path and the kind of value seen.

import { isSecretField } from './schema.ts';

/** One problem in a config: the field path, what is wrong, and the value seen. */
export interface ConfigIssue {
  /** Field path like `streams[1].destinations[0].region`; '' for the whole file. */
  path: string;
  /** What is wrong, lowercase, without the value. */
  message: string;
  /** The offending value; absent when there is none (a missing field). */
  value?: unknown;
}

/** Longest rendering of a value inside a message. */
const MAX_VALUE_CHARS = 80;

/** A config that cannot be used; `issues` holds every problem found. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly source: string;
  readonly issues: readonly ConfigIssue[];
  constructor(source: string, issues: readonly ConfigIssue[]) {
    const safe = issues.map(redactSecret);
    super(safe.map((issue) => formatIssue(source, issue)).join('\n'));
    this.source = source;
    this.issues = safe;
  }
}

/** The issue without its value when its path is a secret field; the message then says what kind of value was seen. */
export function redactSecret(issue: ConfigIssue): ConfigIssue {
  if (!('value' in issue) || !isSecretField(pathSegments(issue.path))) return issue;
  return { path: issue.path, message: `${issue.message} (got ${valueKind(issue.value)}; not shown: secret field)` };
}

// The kind of a value in config words, never the value itself.
function valueKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'true or false';
  return 'nothing';
}

/** One issue as `<source>: <path>: <message> (got <value>)`. */
export function formatIssue(source: string, issue: ConfigIssue): string {
  const where = issue.path === '' ? source : `${source}: ${issue.path}`;
  const got = 'value' in issue ? ` (got ${formatValue(issue.value)})` : '';
  return `${where}: ${issue.message}${got}`;
}

/** A value as it would be written in JSON, shortened when long. */
export function formatValue(value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value);
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 3)}...` : text;
}

/** Renders path segments as `a.b[1].c` (odd keys as `["a b"]`). */
export function fieldPath(segments: readonly (string | number)[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** Parses a path written by fieldPath back into its segments (the inverse of fieldPath). */
export function pathSegments(path: string): (string | number)[] {
  const segments: (string | number)[] = [];
  const token = /\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  while (token.lastIndex < path.length) {
    const start = token.lastIndex;
    const match = token.exec(path);
    // Not a path fieldPath writes: keep the rest as one segment.
    if (match === null) {
      segments.push(path.slice(start));
      break;
    }
    if (match[1] !== undefined) segments.push(match[1]);
    else if (match[2] !== undefined) segments.push(Number(match[2]));
    else segments.push(JSON.parse(match[3]) as string);
  }
  return segments;
}
