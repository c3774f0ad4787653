// README.md's config reference is generated from the schema; this fails when
// a field changed and the README was not regenerated
// (npx node scripts/update-readme-config.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configReference } from '../../src/config/config-reference.ts';

test('README.md config reference matches the schema', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  assert.ok(readme.includes(configReference().trimEnd()), 'README.md config reference is stale: run npx node scripts/update-readme-config.ts');
});
