// `dwcp certs`: issue a federation CA and agent certificates with openssl.
// An agent certificate names the agent in a URI SAN
// dwcp://<federation>/<region>/<node>; peers check it (docs/threat-model.md).

import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { createDevCa, issueDevCert } from './dev-pki.ts';
import { agentUri } from '../transport/peer-identity.ts';

/** Default lifetime of a CA made by `dwcp certs ca`, days. */
export const CA_DAYS = 3650;
/** Default lifetime of an agent certificate, days (rotate well before: agents reload changed files). */
export const AGENT_CERT_DAYS = 90;

const USAGE = `Usage:
  dwcp certs ca --out DIR [--name dwcp-ca] [--days ${CA_DAYS}]
      A new federation CA: DIR/NAME.crt and DIR/NAME.key (keep the key offline).
  dwcp certs agent --ca FILE --ca-key FILE --federation F --region R --node N --out DIR [--days ${AGENT_CERT_DAYS}]
      An agent certificate with the URI SAN dwcp://F/R/N: DIR/N.crt and DIR/N.key
      (characters other than letters, digits, '.', '_', '-' become '_' in the file name).
      --node is the agent's nodeId (the Kubernetes node name under the DaemonSet).
`;

/** Federation and region names (as in the config schema). */
const NAME = /^[a-z0-9-]{1,63}$/;

/** Exit code of a usage error. */
const EXIT_USAGE = 2;

/** Run `dwcp certs ...`; returns the exit code. */
export async function certsCommand(args: string[]): Promise<number> {
  // `dwcp certs --help` asks for the usage, not for a subcommand named --help.
  const [sub, ...rest] = args[0] === '--help' || args[0] === '-h' ? ['help'] : args;
  const { values } = parseArgs({
    args: rest,
    options: {
      out: { type: 'string' }, name: { type: 'string' }, days: { type: 'string' },
      ca: { type: 'string' }, 'ca-key': { type: 'string' },
      federation: { type: 'string' }, region: { type: 'string' }, node: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || sub === undefined || sub === 'help') {
    process.stdout.write(USAGE);
    return sub === undefined ? EXIT_USAGE : 0;
  }
  const days = values.days === undefined ? undefined : Number(values.days);
  if (days !== undefined && (!Number.isInteger(days) || days < 1)) return usage(`--days must be a whole number of days >= 1, got "${values.days}"`);
  if (!values.out) return usage('--out DIR is required');
  const out = resolve(values.out);
  if (sub === 'ca') {
    const ca = await createDevCa(out, values.name ?? 'dwcp-ca', days ?? CA_DAYS);
    process.stdout.write(`CA certificate: ${ca.caFile}\nCA key:         ${ca.caKeyFile}\n`);
    return 0;
  }
  if (sub === 'agent') {
    const missing = (['ca', 'ca-key', 'federation', 'region', 'node'] as const).filter((k) => !values[k]);
    if (missing.length > 0) return usage(`missing ${missing.map((k) => `--${k}`).join(', ')}`);
    const identity = { federation: values.federation!, region: values.region!, node: values.node! };
    // The same rule as the config's federation and region names.
    for (const field of ['federation', 'region'] as const) {
      if (!NAME.test(identity[field])) return usage(`--${field} must be 1..63 lowercase letters, digits or '-', got "${identity[field]}"`);
    }
    const ca = { dir: out, caFile: resolve(values.ca!), caKeyFile: resolve(values['ca-key']!) };
    const fileName = identity.node.replace(/[^A-Za-z0-9._-]/g, '_');
    const cert = await issueDevCert(ca, fileName, identity, { dir: out, days: days ?? AGENT_CERT_DAYS });
    process.stdout.write(`agent ${agentUri(identity)}\ncertificate: ${cert.certFile}\nkey:         ${cert.keyFile}\nCA:          ${cert.caFile}\n`);
    return 0;
  }
  return usage(`unknown subcommand "${sub}" (ca, agent)`);
}

function usage(problem: string): number {
  process.stderr.write(`dwcp certs: ${problem}\n\n${USAGE}`);
  return EXIT_USAGE;
}
