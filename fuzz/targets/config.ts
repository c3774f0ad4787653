// Fuzz target: the config loader (src/config/load-config.ts): YAML text in,
// a Config or a ConfigError out, never any other exception; a ConfigError
// lists at least one issue, each with a lowercase message (config-error.ts).
// Input: the file's text. Runs parseConfig, the whole of loadConfig but the
// file reads, with a fixed environment so runs are reproducible.

import { ConfigError } from '../../src/config/config-error.ts';
import { parseConfig, type ConfigOptions } from '../../src/config/load-config.ts';
import { check } from './fuzz-input.ts';

/** What loading takes from outside the file, fixed. */
const OPTIONS: ConfigOptions = { env: { NODE_NAME: 'node-1', EMPTY: '' }, baseDir: '/etc/dwcp', hostname: 'fuzz-host', cpuCount: 2 };

/** Jazzer entry point. */
export function fuzz(data: Buffer): void {
  try {
    parseConfig(data.toString('utf8'), '/etc/dwcp/dwcp.yaml', OPTIONS);
  } catch (err) {
    check(err instanceof ConfigError, `parseConfig threw ${(err as Error)?.name}: ${(err as Error)?.message}, not a ConfigError`);
    check(err.issues.length > 0, 'ConfigError without issues');
    for (const issue of err.issues) check(/^[^A-Z]/.test(issue.message), `issue message not lowercase: ${issue.path}: ${issue.message}`);
  }
}
