// Loading a config: read the file, parse YAML, expand ${ENV}, check it
// against the schema and the cross-field rules, then compile it. Every
// problem found is reported at once in one ConfigError.

import { readFile } from 'node:fs/promises';
import { availableParallelism, hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { buildConfig } from './compile-config.ts';
import { ConfigError, type ConfigIssue } from './config-error.ts';
import type { Config } from './config.ts';
import { crossCheckIssues } from './cross-checks.ts';
import { expandEnv, type Env } from './expand-env.ts';
import { schemaIssues } from './schema-issues.ts';
import { ConfigSchema, type ConfigInput } from './schema.ts';
import { checkTlsFiles } from './tls-files.ts';

/** What loading may take from outside the file; each defaults to this process. */
export interface ConfigOptions {
  /** Variables for ${NAME}; default process.env. */
  env?: Env;
  /** Directory relative paths resolve against; default the file's directory (parse/load) or cwd (compile). */
  baseDir?: string;
  /** Default nodeId; default os.hostname(). */
  hostname?: string;
  /** CPUs for the default worker count; default os.availableParallelism(). */
  cpuCount?: number;
}

/**
 * Reads, checks and compiles a config file, and checks that its TLS files
 * are readable. Throws a ConfigError listing every problem.
 */
export async function loadConfig(path: string, options: ConfigOptions = {}): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(path, [{ path: '', message: `cannot read config file: ${code}` }]);
  }
  const config = parseConfig(text, path, options);
  await checkTlsFiles(config);
  return config;
}

/**
 * Parses and compiles config text; sourceName names it in messages and, as
 * a path, gives the directory relative paths resolve against.
 */
export function parseConfig(text: string, sourceName: string, options: ConfigOptions = {}): Config {
  // YAML 1.2 (so "on" and "1m" stay strings); duplicate keys are errors.
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(sourceName, doc.errors.map((e) => ({ path: '', message: `invalid YAML: ${e.message.split('\n')[0]}` })));
  }
  // toJS throws a ReferenceError on an alias with no anchor before it and
  // on more aliases than maxAliasCount (a "billion laughs" file).
  let tree: unknown;
  try {
    tree = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(sourceName, [{ path: '', message: `invalid YAML: ${(err as Error).message}` }]);
  }
  if (tree === null || tree === undefined) throw new ConfigError(sourceName, [{ path: '', message: 'is empty' }]);
  return compileConfig(tree, { baseDir: dirname(resolve(sourceName)), ...options }, sourceName);
}

/**
 * Checks and compiles a config object as a user writes it (ConfigInput, e.g.
 * from a CRD spec): ${ENV} expansion, schema, cross-field rules, defaults,
 * units. Throws a ConfigError listing every problem.
 */
export function compileConfig(input: ConfigInput | unknown, options: ConfigOptions = {}, sourceName = 'config'): Config {
  // Expand, then collect every problem the schema and the cross checks see.
  const issues: ConfigIssue[] = [];
  const expanded = expandEnv(input, options.env ?? process.env, issues);
  issues.push(...schemaIssues(ConfigSchema, expanded), ...crossCheckIssues(expanded));
  if (issues.length > 0) throw new ConfigError(sourceName, dedupe(issues));

  // Compile; units the patterns let through may still fail ('1.5ms').
  const config = buildConfig(expanded as ConfigInput, {
    source: sourceName,
    baseDir: options.baseDir ?? process.cwd(),
    hostname: options.hostname ?? hostname(),
    cpuCount: options.cpuCount ?? availableParallelism(),
  }, issues);
  if (issues.length > 0) throw new ConfigError(sourceName, issues);
  return config;
}

// One issue per field: the first found (env, then schema, then cross checks).
function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    if (issue.path !== '' && seen.has(issue.path)) return false;
    seen.add(issue.path);
    return true;
  });
}
