// Rewrite the generated config reference in README.md from the schema.
// Run: npx node scripts/update-readme-config.ts (test/config/readme.test.ts checks it is current).

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configReference, REFERENCE_BEGIN, REFERENCE_END } from '../src/config/config-reference.ts';

const readme = fileURLToPath(new URL('../README.md', import.meta.url));
const text = readFileSync(readme, 'utf8');
const start = text.indexOf(REFERENCE_BEGIN);
const end = text.indexOf(REFERENCE_END);
if (start < 0 || end < 0) throw new Error('README.md: config reference markers not found');
writeFileSync(readme, text.slice(0, start) + configReference().trimEnd() + text.slice(end + REFERENCE_END.length));
