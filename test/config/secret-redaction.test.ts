// Config errors about secret fields (PostgreSQL passwords, walsender user
// passwords) name the field but never print the value, whatever its type and
// whichever check (schema, ${ENV} expansion) found the problem.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, pathSegments, fieldPath } from '../../src/config/config-error.ts';
import { parseConfig } from '../../src/config/load-config.ts';
import { isSecretField } from '../../src/config/schema.ts';
import { twoRegionHead } from '../helpers/config-yaml.ts';

const HOST = { env: {}, hostname: 'host-a', cpuCount: 2 };

// A valid file with one pg-wal stream; PASSWORD and USERS are replaced per test.
const TEMPLATE = `${twoRegionHead()}streams:
  - id: main-db
    kind: pg-wal
    source:
      region: eu-west
      connection: { host: 127.0.0.1, user: replicator, password: PASSWORD }
    destinations:
      - region: us-east
        walsender: { users: USERS }
`;

// Parses the template with the given YAML for the password and the users map; returns the ConfigError.
function errorFor(password: string, users: string, env: Record<string, string> = {}): ConfigError {
  const text = TEMPLATE.replace('PASSWORD', password).replace('USERS', users);
  try {
    parseConfig(text, 'dwcp.yaml', { ...HOST, env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

test('a number or a mapping as password: the error names the field, never the value', () => {
  const err = errorFor('987654321', '{ alice: 55501234 }');
  assert.match(err.message, /streams\[0\]\.source\.connection\.password: must be a string \(got a number; not shown: secret field\)/);
  assert.match(err.message, /streams\[0\]\.destinations\[0\]\.walsender\.users\.alice: must be a string \(got a number; not shown: secret field\)/);
  assert.ok(!err.message.includes('987654321'), err.message);
  assert.ok(!err.message.includes('55501234'), err.message);
  // The structured issues carry no value either (callers may log them).
  assert.ok(err.issues.every((issue) => !('value' in issue)), JSON.stringify(err.issues));

  const nested = errorFor('{ hunter2: [hunter3] }', '[hunter4]');
  assert.match(nested.message, /connection\.password: must be a string \(got a mapping; not shown: secret field\)/);
  assert.match(nested.message, /walsender\.users: must be a mapping \(got a list; not shown: secret field\)/);
  for (const secret of ['hunter2', 'hunter3', 'hunter4']) assert.ok(!nested.message.includes(secret), nested.message);
  assert.ok(!JSON.stringify(nested.issues).includes('hunter'), JSON.stringify(nested.issues));
});

test('an ${ENV} problem in a password does not echo the text as written', () => {
  const err = errorFor('"pw-literal-part-${OOPS"', '{}');
  assert.match(err.message, /connection\.password: unterminated \$\{ \(write \$\$\{ for a literal\) \(got a string; not shown: secret field\)/);
  assert.ok(!err.message.includes('pw-literal-part'), err.message);
});

test('values of fields that are not secret are still shown', () => {
  const text = TEMPLATE.replace('PASSWORD', 'pw').replace('USERS', '{}').replace('user: replicator', 'user: 12345');
  assert.throws(() => parseConfig(text, 'dwcp.yaml', HOST), /connection\.user: must be a string \(got 12345\)/);
});

test('secret fields are found by path through lists, maps and optional fields; paths round-trip', () => {
  assert.equal(isSecretField(['streams', 0, 'source', 'connection', 'password']), true);
  assert.equal(isSecretField(['streams', 3, 'destinations', 1, 'walsender', 'users', 'bob']), true);
  assert.equal(isSecretField(['streams', 3, 'destinations', 1, 'walsender', 'users']), true);
  assert.equal(isSecretField(['streams', 0, 'source', 'connection', 'user']), false);
  assert.equal(isSecretField(['tls', 'key']), false, 'tls.key is a file path, not key material');
  assert.equal(isSecretField(['nosuch', 'password']), false);
  for (const segments of [['streams', 0, 'destinations', 12, 'walsender', 'users', 'odd key'], ['a', 'b-c', 3]]) {
    assert.deepEqual(pathSegments(fieldPath(segments)), segments);
  }
});
