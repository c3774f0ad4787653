// Stage dict@1's dictionaries in the region consensus store (ACP holds
// "trained dictionaries' ids", DESIGN.md): each stored once, by its content
// id (dictionaryId: the same bytes always have the same id), under
// /dwcp/<federation>/dictionaries/<id>, plus per stream the id it currently
// uses, so a restarted source keeps its dictionary instead of training a new
// one. Regions have separate stores: the source stores what it trained in
// its own, ships the bytes to the destination once, and the destination
// stores them in its own by the same id (accept() checks that the bytes are
// the id). A frame names its dictionary by id; a destination that does not
// hold it refuses the frame with an error naming the id (UnknownDictionary
// Error), never decodes it with other bytes.
// Works on every ConsensusStore (embedded and etcd): one compare-and-swap
// per dictionary, values far below etcd's 1.5 MiB request limit.

import type { ConsensusStore } from '../../consensus/consensus-store.ts';
import { DictionaryCodec, dictionaryId } from './dictionary-codec.ts';

/** Largest dictionary stored, bytes (etcd refuses requests over 1.5 MiB by default; zstd's own default dictionary is 110 KiB). */
export const MAX_DICTIONARY_BYTES = 256 * 1024;
/** Smallest dictionary worth an id, bytes (raw-dictionary.ts refuses smaller sizes too). */
const MIN_DICTIONARY_BYTES = 256;
/** What an id looks like (dictionaryId: 16 hex digits). */
const ID_PATTERN = /^[0-9a-f]{16}$/;

/** A frame named a dictionary this region does not hold (yet): refuse it, resend after the dictionary arrives. */
export class UnknownDictionaryError extends Error {
  override name = 'UnknownDictionaryError';
  /** The id the frame named. */
  readonly id: string;

  constructor(id: string, where: string) {
    super(`dictionary ${id} is not in ${where}: frame refused until the dictionary arrives`);
    this.id = id;
  }
}

/** A dictionary or id that is malformed: a size no store may hold, an id of the wrong form, bytes that are not the id. */
export class InvalidDictionaryError extends Error {
  override name = 'InvalidDictionaryError';
}

/** Key of a dictionary by id. */
export function dictionaryKey(federation: string, id: string): string {
  return `/dwcp/${keySegment('federation', federation)}/dictionaries/${checkId(id)}`;
}

/** Key of the id of the dictionary a stream uses. */
export function streamDictionaryKey(federation: string, streamId: string): string {
  return `/dwcp/${keySegment('federation', federation)}/stream-dictionaries/${keySegment('streamId', streamId)}`;
}

/** The dictionaries of one federation in one region's consensus store. */
export class DictionaryStore {
  readonly #store: ConsensusStore;
  readonly #federation: string;
  /** Codecs of dictionaries read once (immutable by id, so never stale). */
  readonly #codecs = new Map<string, DictionaryCodec>();

  constructor(store: ConsensusStore, federation: string) {
    this.#store = store;
    this.#federation = federation;
  }

  /** Store a dictionary once by its id; created is false when it was there already. Throws when too large or too small. */
  async put(dictionary: Uint8Array): Promise<{ id: string; created: boolean }> {
    checkSize(dictionary.length);
    const id = dictionaryId(dictionary);
    const key = dictionaryKey(this.#federation, id);
    const result = await this.#store.compareAndSwap(key, 0, Buffer.from(dictionary));
    if (result.ok) return { id, created: true };
    // There already: the same bytes, unless the stored value was damaged.
    if (result.current && dictionaryId(result.current.value) === id) return { id, created: false };
    throw new Error(`dictionary ${id}: ${key} holds other bytes (damaged); not overwritten`);
  }

  /** Accept a dictionary shipped by the source region under id: stored here when its bytes are that id; throws otherwise. */
  async accept(id: string, dictionary: Uint8Array): Promise<{ created: boolean }> {
    checkId(id);
    const actual = dictionaryId(dictionary);
    if (actual !== id) throw new InvalidDictionaryError(`shipped dictionary ${id}: its ${dictionary.length} bytes are dictionary ${actual}`);
    return { created: (await this.put(dictionary)).created };
  }

  /** The dictionary with id, checked against it; null when not stored here. */
  async get(id: string): Promise<Buffer | null> {
    const kv = await this.#store.get(dictionaryKey(this.#federation, id));
    if (!kv) return null;
    if (dictionaryId(kv.value) !== id) throw new Error(`dictionary ${id}: stored bytes are dictionary ${dictionaryId(kv.value)} (damaged)`);
    return kv.value;
  }

  /** A codec for the dictionary with id; throws UnknownDictionaryError when this region does not hold it. */
  async codec(id: string): Promise<DictionaryCodec> {
    const cached = this.#codecs.get(id);
    if (cached) return cached;
    const bytes = await this.get(id);
    if (!bytes) throw new UnknownDictionaryError(id, "this region's consensus store");
    const codec = new DictionaryCodec(bytes);
    this.#codecs.set(id, codec);
    return codec;
  }

  /** Decode a frame made with dictionary id (exactly rawLength bytes); throws UnknownDictionaryError when it is not held here. */
  async decompress(id: string, payload: Uint8Array, rawLength: number): Promise<Buffer> {
    return (await this.codec(id)).decompress(payload, rawLength);
  }

  /** Ids of the dictionaries stored here. */
  async ids(): Promise<string[]> {
    const prefix = `/dwcp/${keySegment('federation', this.#federation)}/dictionaries/`;
    return (await this.#store.list(prefix)).map((kv) => kv.key.slice(prefix.length)).filter((id) => ID_PATTERN.test(id));
  }

  /** The id of the dictionary streamId uses, or null when it has none yet. */
  async streamDictionary(streamId: string): Promise<string | null> {
    const kv = await this.#store.get(streamDictionaryKey(this.#federation, streamId));
    return kv ? kv.value.toString('utf8') : null;
  }

  /** Make id (stored already) the dictionary streamId uses. */
  async setStreamDictionary(streamId: string, id: string): Promise<void> {
    if (!(await this.get(id))) throw new UnknownDictionaryError(id, "this region's consensus store");
    const key = streamDictionaryKey(this.#federation, streamId);
    const current = await this.#store.get(key);
    const result = await this.#store.compareAndSwap(key, current?.modRevision ?? 0, Buffer.from(id, 'utf8'));
    if (!result.ok) throw new Error(`stream ${streamId}: its dictionary changed meanwhile (compare-and-swap on ${key} failed)`);
  }
}

function checkSize(bytes: number): void {
  if (bytes < MIN_DICTIONARY_BYTES || bytes > MAX_DICTIONARY_BYTES) {
    throw new InvalidDictionaryError(`dictionary of ${bytes} bytes: want ${MIN_DICTIONARY_BYTES}..${MAX_DICTIONARY_BYTES} (etcd's request limit is 1.5 MiB)`);
  }
}

function checkId(id: string): string {
  if (!ID_PATTERN.test(id)) throw new InvalidDictionaryError(`dictionary id ${JSON.stringify(id)}: want 16 lowercase hex digits`);
  return id;
}

function keySegment(field: string, value: string): string {
  if (!value || value.includes('/')) throw new Error(`consensus key: ${field} must be a non-empty string without '/', got ${JSON.stringify(value)}`);
  return value;
}
