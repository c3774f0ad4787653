// Structural problems (types, ranges, patterns, unknown and missing fields)
// found by the TypeBox schema, worded for people: the field path as written
// in the file and "must be ..." instead of TypeBox's "Expected ...".

import type { TSchema } from '@sinclair/typebox';
import { Errors, ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { fieldPath, type ConfigIssue } from './config-error.ts';
import { schemaHint } from './schema.ts';

/** Edit distance under which an unknown field gets a "did you mean". */
const SUGGEST_MAX_DISTANCE = 2;

/** Every structural problem of value against schema, at most one per field. */
export function schemaIssues(schema: TSchema, value: unknown): ConfigIssue[] {
  // TypeBox may report a field twice (missing, then wrong type): keep the first.
  const byPath = new Map<string, ConfigIssue>();
  for (const error of Errors(schema, value)) {
    const segments = pointerSegments(error.path, value);
    const path = fieldPath(segments);
    if (!byPath.has(path)) byPath.set(path, toIssue(error, path, String(segments.at(-1))));
  }
  return [...byPath.values()];
}

// One TypeBox error in the config's words.
function toIssue(error: ValueError, path: string, key: string): ConfigIssue {
  const s = error.schema as Record<string, unknown>;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return { path, message: 'is required' };
    case ValueErrorType.ObjectAdditionalProperties: {
      const known = Object.keys((s.properties as object | undefined) ?? {});
      const near = suggest(key, known);
      return { path, message: near === undefined ? 'unknown field' : `unknown field (did you mean "${near}"?)` };
    }
  }
  const hint = schemaHint(error.schema);
  return { path, message: hint ? hint(error.value) : mustBe(error.type, s), value: error.value };
}

// The generic wording for a failed keyword.
function mustBe(type: ValueErrorType, s: Record<string, unknown>): string {
  switch (type) {
    case ValueErrorType.Object: return 'must be a mapping';
    case ValueErrorType.Array: return 'must be a list';
    case ValueErrorType.String: return 'must be a string';
    case ValueErrorType.Boolean: return 'must be true or false';
    case ValueErrorType.Integer:
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum: return `must be an integer${bounds(type, s)}`;
    case ValueErrorType.Number:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.NumberMaximum: return `must be a number${bounds(type, s)}`;
    case ValueErrorType.StringMinLength: return s.minLength === 1 ? 'must not be empty' : `must be at least ${s.minLength} characters`;
    case ValueErrorType.StringMaxLength: return `must be at most ${s.maxLength} characters`;
    case ValueErrorType.StringPattern: return `must match ${s.pattern}`;
    case ValueErrorType.ArrayMinItems: return s.minItems === 1 ? 'must not be empty' : `must have at least ${s.minItems} items`;
    case ValueErrorType.ArrayMaxItems: return `must have at most ${s.maxItems} items`;
    default: return 'is not an allowed value';
  }
}

// " >= 1", " <= 1024" or " in 1..1024", whichever the failure is about.
function bounds(type: ValueErrorType, s: Record<string, unknown>): string {
  const min = s.minimum;
  const max = s.maximum;
  if (type === ValueErrorType.IntegerMinimum || type === ValueErrorType.NumberMinimum) return ` >= ${min}`;
  if (type === ValueErrorType.IntegerMaximum || type === ValueErrorType.NumberMaximum) return ` <= ${max}`;
  if (min !== undefined && max !== undefined) return ` in ${min}..${max}`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return '';
}

// A JSON pointer as path segments; array positions become numbers.
function pointerSegments(pointer: string, root: unknown): (string | number)[] {
  const segments: (string | number)[] = [];
  let node = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    const index = Array.isArray(node) ? Number(key) : NaN;
    segments.push(Number.isInteger(index) ? index : key);
    node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  }
  return segments;
}

// The known field closest to an unknown one, when close enough to be a typo.
function suggest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = SUGGEST_MAX_DISTANCE + 1;
  for (const candidate of known) {
    const d = candidate.toLowerCase() === key.toLowerCase() ? 0 : distance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

// Levenshtein distance, one row at a time.
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}
