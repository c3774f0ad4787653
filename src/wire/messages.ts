// Typed access to proto/dwcp.proto. The schema is loaded once with
// protobufjs reflection; these interfaces mirror it (proto3 scalars: uint64
// travels as number here, safe to 2^53, which covers sequence numbers and
// LSNs of any real cluster).

import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** Protocol version spoken by this build; peers must match exactly. */
export const PROTOCOL_VERSION = 1;

const PROTO_PATH = fileURLToPath(new URL('../../proto/dwcp.proto', import.meta.url));
const root = protobuf.loadSync(PROTO_PATH);

const CONVERSION: protobuf.IConversionOptions = {
  longs: Number,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: false,
};

/** A typed codec for one message type. */
export interface Codec<T> {
  encode(message: T): Uint8Array;
  /** Decode; throws on malformed input (callers turn that into a refusal). */
  decode(bytes: Uint8Array): T;
}

/** A codec for the message type `name` (e.g. dwcp.v1.Manifest). */
export function codec<T>(name: string): Codec<T> {
  const type = root.lookupType(name);
  return {
    encode(message: T): Uint8Array {
      return type.encode(type.fromObject(message as Record<string, unknown>)).finish();
    },
    decode(bytes: Uint8Array): T {
      return type.toObject(type.decode(bytes), CONVERSION) as T;
    },
  };
}

/** Encoding of a DataFrame payload. */
export const Encoding = { RAW: 0, ZSTD: 1, ZSTD_STREAM: 2 } as const;
export type Encoding = (typeof Encoding)[keyof typeof Encoding];

export interface Hello {
  protocolVersion: number;
  federation: string;
  region: string;
  nodeId: string;
  capabilities: string[];
  linkId: string;
  carrierIndex: number;
}

export interface HelloReply {
  accepted: boolean;
  refusal: string;
  protocolVersion: number;
  federation: string;
  region: string;
  nodeId: string;
  capabilities: string[];
}

export interface DataFrame {
  streamId: string;
  seq: number;
  epoch: number;
  encoding: Encoding;
  digest: Uint8Array;
  meta: Uint8Array;
  payload: Uint8Array;
  rawLength: number;
  resync: boolean;
  /** Records batched in the frame (0 or 1: one; 2 or more: meta is a RecordBatch), src/agent/record-batch.ts. */
  records?: number;
}

export interface Ack {
  streamId: string;
  durableSeq: number;
  chain: Uint8Array;
}

/** Delivered sequence numbers of one stream: inclusive ranges first[i]..last[i]. */
export interface StreamRanges {
  streamId: string;
  first: number[];
  last: number[];
}

/** Destination -> source (capability amst:delivered@1): frames held, not yet durable. */
export interface Delivered {
  streams: StreamRanges[];
}

export interface Nack {
  streamId: string;
  seq: number;
  reason: string;
}

export interface StreamOpen {
  streamId: string;
  kind: string;
  epoch: number;
  sourceRegion: string;
}

export interface StreamState {
  streamId: string;
  durableSeq: number;
  chain: Uint8Array;
  state: Uint8Array;
  more: boolean;
  refusal: string;
  /** With refusal: the cause may pass (sink I/O error), so the sender retries the open with backoff instead of halting. */
  retryable?: boolean;
}

export interface ErrorMessage {
  code: string;
  detail: string;
  streamId: string;
}

export interface Ping {
  nonce: number;
  sentUnixMicros: number;
  /** Filler of a goodput probe (path-probe.ts); a Pong never echoes it. */
  padding?: Uint8Array;
}

/** The one message type on a carrier: exactly one field is set. */
export interface Envelope {
  hello?: Hello;
  helloReply?: HelloReply;
  data?: DataFrame;
  ack?: Ack;
  nack?: Nack;
  streamOpen?: StreamOpen;
  streamState?: StreamState;
  error?: ErrorMessage;
  ping?: Ping;
  pong?: Ping;
  /** Stage dedup@1: see src/wire/dedup-messages.ts. */
  chunkQuery?: ChunkQuery;
  chunkHave?: ChunkHave;
  /** Capability amst:delivered@1: see src/transport/delivery-acks.ts. */
  delivered?: Delivered;
}

/** Source -> destination: which of these chunks (SHA-256, 32 bytes each, concatenated) are missing? */
export interface ChunkQuery {
  streamId: string;
  queryId: number;
  path: string;
  hashes: Uint8Array;
  /** Stage delta@1: per hash, its first offset and length in the file (asks for DeltaBases); empty otherwise. */
  offsets?: number[];
  lengths?: number[];
}

/** Destination -> source: bit i of missing set when hash i of the query is missing; refusal: treat all as missing. */
export interface ChunkHave {
  streamId: string;
  queryId: number;
  count: number;
  missing: Uint8Array;
  refusal: string;
  /** Stage delta@1: bases for some missing hashes (see proto DeltaBase). */
  bases?: DeltaBase[];
}

/** Stage delta@1: a range of the destination's file at the query's path, as block signatures. */
export interface DeltaBase {
  index: number;
  offset: number;
  length: number;
  hash: Uint8Array;
  blockBytes: number;
  signatures: Uint8Array;
}

/** Stage delta@1: a chunk as a delta (the payload) against a range of the destination's file at basePath. */
export interface PutChunkDelta {
  hash: Uint8Array;
  length: number;
  basePath: string;
  baseOffset: number;
  baseLength: number;
  baseHash: Uint8Array;
  blockBytes: number;
}

const envelopeType = root.lookupType('dwcp.v1.Envelope');

/** Envelope codec; decode keeps only the field that was set. */
export const envelopeCodec: Codec<Envelope> = {
  encode(message: Envelope): Uint8Array {
    return envelopeType.encode(envelopeType.fromObject(message as Record<string, unknown>)).finish();
  },
  decode(bytes: Uint8Array): Envelope {
    const decoded = envelopeType.decode(bytes) as unknown as Record<string, unknown> & { body?: string };
    const which = decoded.body;
    if (!which) throw new Error('envelope has no body');
    const sub = envelopeType.fields[which].resolvedType as protobuf.Type;
    return { [which]: sub.toObject(decoded[which] as protobuf.Message, CONVERSION) } as Envelope;
  },
};

const dataFrameType = root.lookupType('dwcp.v1.DataFrame');

/** Field numbers a writer needs to place a DataFrame's payload itself (src/wire/data-frame-writer.ts). */
export const DATA_FRAME_FIELDS = {
  /** Envelope.data */
  envelopeData: envelopeType.fields.data!.id,
  /** DataFrame.payload */
  payload: dataFrameType.fields.payload!.id,
};

/** A DataFrame's fields but its payload, encoded (the payload field is appended by the writer). */
export function encodeDataFrameHead(frame: Omit<DataFrame, 'payload'>): Uint8Array {
  return dataFrameType.encode(dataFrameType.fromObject(frame as unknown as Record<string, unknown>)).finish();
}

// ---- objects stream kind ----

export interface FileVersion {
  size: number;
  mtimeUs: number;
  mode: number;
}

export interface PutChunk {
  path: string;
  version: FileVersion;
  offset: number;
}

export interface ObjectOp {
  put?: PutChunk;
  delete?: { path: string };
  rename?: { from: string; to: string; version: FileVersion };
  mkdir?: { path: string; mode: number; mtimeUs: number };
  /** Stage dedup@1: a file assembled from chunks (inline chunks' bytes in the payload). */
  recipe?: PutRecipe;
  /** Stage dedup@1: one chunk's bytes (the payload), named by its SHA-256. */
  chunkData?: { hash: Uint8Array };
  /** Stage delta@1: one chunk as a delta against a base the destination holds. */
  chunkDelta?: PutChunkDelta;
  /** Stage dict@1: a dictionary (its bytes are the payload), stored by the destination in its consensus store. */
  dictionary?: { id: string };
  /** Stage dict@1: a whole small file, the payload a zstd frame made with dictionary dictionaryId. */
  dictFile?: { path: string; version: FileVersion; dictionaryId: string };
}

/** One chunk of a recipe, in file order. */
export interface RecipeChunk {
  hash: Uint8Array;
  length: number;
  /** Its bytes are in the frame's payload. */
  inline: boolean;
}

/** A whole file at version as ordered chunks. */
export interface PutRecipe {
  path: string;
  version: FileVersion;
  chunks: RecipeChunk[];
}

export interface ManifestEntry {
  path: string;
  version: FileVersion;
  directory: boolean;
}

export interface PartialFile {
  path: string;
  version: FileVersion;
  offset: number;
}

export interface Manifest {
  entries: ManifestEntry[];
  partial?: PartialFile;
  /** Stage dict@1: ids of the dictionaries the destination region holds. */
  dictionaries?: string[];
}

/** A oneof message decoded to only the field that was set. */
function oneofCodec<T>(name: string): Codec<T> {
  const type = root.lookupType(name);
  const oneofName = type.oneofsArray[0].name;
  return {
    encode(message: T): Uint8Array {
      return type.encode(type.fromObject(message as Record<string, unknown>)).finish();
    },
    decode(bytes: Uint8Array): T {
      const decoded = type.decode(bytes) as unknown as Record<string, unknown>;
      const which = decoded[oneofName] as string | undefined;
      if (!which) throw new Error(`${name} has no ${oneofName}`);
      const sub = type.fields[which].resolvedType as protobuf.Type;
      return { [which]: sub.toObject(decoded[which] as protobuf.Message, CONVERSION) } as T;
    },
  };
}

/** The records of a batched DataFrame: each one's meta and data length. */
export interface RecordBatch {
  records: Array<{ meta: Uint8Array; length: number }>;
}

export const recordBatchCodec = codec<RecordBatch>('dwcp.v1.RecordBatch');
export const objectOpCodec = oneofCodec<ObjectOp>('dwcp.v1.ObjectOp');
export const manifestCodec = codec<Manifest>('dwcp.v1.Manifest');

// ---- pg-wal stream kind ----

export interface WalData {
  timeline: number;
  startLsn: number;
  serverWalEnd: number;
  serverTime: number;
}

export interface WalRecord {
  data?: WalData;
  history?: { timeline: number; fileName: string };
  system?: { systemId: string; timeline: number; walSegmentSize: number; serverVersion: number };
}

export interface WalResume {
  systemId: string;
  timeline: number;
  flushLsn: number;
}

export const walRecordCodec = oneofCodec<WalRecord>('dwcp.v1.WalRecord');
export const walResumeCodec = codec<WalResume>('dwcp.v1.WalResume');
