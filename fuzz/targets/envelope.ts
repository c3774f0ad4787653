// Fuzz target: the protobuf codecs of src/wire/messages.ts (the Envelope
// every carrier reads, and the kind-specific ObjectOp, Manifest, WalRecord
// and WalResume carried in frames). Input: [codec selector, ...bytes].
// Asserts what the codecs promise: decode refuses with an Error or returns
// a value (a oneof with exactly one known field set); what decodes holds no
// more data than the bytes it came from; and it round-trips: encoding it
// never throws and decoding that gives the same value again.

import { isDeepStrictEqual } from 'node:util';
import {
  envelopeCodec,
  manifestCodec,
  objectOpCodec,
  walRecordCodec,
  walResumeCodec,
  type Codec,
} from '../../src/wire/messages.ts';
import { check } from './fuzz-input.ts';

/** The codecs, by selector byte; oneof lists the fields a oneof codec may set. */
const CODECS: { name: string; codec: Codec<unknown>; oneof?: string[] }[] = [
  { name: 'Envelope', codec: envelopeCodec as Codec<unknown>, oneof: ['hello', 'helloReply', 'data', 'ack', 'nack', 'streamOpen', 'streamState', 'error', 'ping', 'pong', 'chunkQuery', 'chunkHave', 'delivered'] },
  { name: 'ObjectOp', codec: objectOpCodec as Codec<unknown>, oneof: ['put', 'delete', 'rename', 'mkdir', 'recipe', 'chunkData', 'chunkDelta', 'dictionary', 'dictFile'] },
  { name: 'Manifest', codec: manifestCodec as Codec<unknown> },
  { name: 'WalRecord', codec: walRecordCodec as Codec<unknown>, oneof: ['data', 'history', 'system'] },
  { name: 'WalResume', codec: walResumeCodec as Codec<unknown> },
];

/** Jazzer entry point. */
export function fuzz(data: Buffer): void {
  if (data.length < 1) return;
  const { name, codec, oneof } = CODECS[data[0] % CODECS.length];
  const bytes = data.subarray(1);

  // Decode: an Error is a refusal, anything else thrown is a bug.
  let value: unknown;
  try {
    value = codec.decode(bytes);
  } catch (err) {
    check(err instanceof Error, `${name} decode threw a non-Error: ${String(err)}`);
    return;
  }

  // Shape and size of what decoded.
  if (oneof) {
    const keys = Object.keys(value as object);
    check(keys.length === 1 && oneof.includes(keys[0]), `${name} decoded to fields [${keys.join(', ')}], want exactly one of its oneof`);
  }
  const held = heldUnits(value);
  check(held <= bytes.length, `${name} decoded ${bytes.length} bytes into ${held} units of strings and bytes`);

  // Round trip: what decoded encodes, and decodes to itself.
  let again: unknown;
  try {
    again = codec.decode(codec.encode(value));
  } catch (err) {
    throw new Error(`${name} round trip of a decoded value failed: ${(err as Error).message}`, { cause: err });
  }
  check(isDeepStrictEqual(again, value), `${name} round trip changed the value: ${show(value)} became ${show(again)}`);
}

// String (UTF-16 units) and byte lengths in a decoded value, summed.
function heldUnits(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (value instanceof Uint8Array) return value.length;
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + heldUnits(item), 0);
  if (value !== null && typeof value === 'object') return Object.values(value).reduce((sum: number, item) => sum + heldUnits(item), 0);
  return 0;
}

// A decoded value for a finding's message (bytes as hex).
function show(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const raw = this[key];
    return raw instanceof Uint8Array ? `0x${Buffer.from(raw).toString('hex')}` : v;
  }).slice(0, 400);
}
