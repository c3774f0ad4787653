// ${NAME} and ${NAME:-default} in config string values, so one ConfigMap can
// serve every node (nodeId: ${NODE_NAME}) and secrets can come from the
// environment. `$${` writes a literal `${`. Keys are never expanded.

import { fieldPath, type ConfigIssue } from './config-error.ts';

/** Environment variables by name (process.env in production). */
export type Env = Readonly<Record<string, string | undefined>>;

/** `${NAME}` or `${NAME:-default}`, or the `$${` escape. */
const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
/** A variable name as shells accept it. */
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Returns a copy of a parsed config tree with references in string values
 * replaced from env; problems (unset without default, bad syntax) are pushed
 * to issues naming the field and the string as written.
 */
export function expandEnv(tree: unknown, env: Env, issues: ConfigIssue[]): unknown {
  return visit(tree, [], env, issues);
}

// Walks arrays and plain objects, expanding each string leaf.
function visit(node: unknown, path: (string | number)[], env: Env, issues: ConfigIssue[]): unknown {
  if (typeof node === 'string') return expandString(node, path, env, issues);
  if (Array.isArray(node)) return node.map((item, i) => visit(item, [...path, i], env, issues));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) out[key] = visit(value, [...path, key], env, issues);
    return out;
  }
  return node;
}

// Expands one string; on a problem records it and keeps the text as written.
function expandString(text: string, path: (string | number)[], env: Env, issues: ConfigIssue[]): string {
  if (!text.includes('${')) return text;
  let failed = false;
  const fail = (message: string) => {
    if (!failed) issues.push({ path: fieldPath(path), message, value: text });
    failed = true;
    return '';
  };
  const expanded = text.replace(REFERENCE, (match, body: string | undefined) => {
    // The escape and an unclosed reference.
    if (match === '$${') return '${';
    if (body === undefined) return fail('unterminated ${ (write $${ for a literal)');

    // ${NAME} or ${NAME:-default}: the default applies when unset or empty, as in sh.
    const split = body.indexOf(':-');
    const name = split === -1 ? body : body.slice(0, split);
    if (!NAME.test(name)) return fail(`invalid environment variable name "${name}"`);
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (split !== -1) return body.slice(split + 2);
    if (value === '') return value;
    return fail(`environment variable ${name} is not set and has no default`);
  });
  return failed ? text : expanded;
}
