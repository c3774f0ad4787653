// HDE's encoding layers as named, versioned stages, and their negotiation.
// Each side announces the stages it runs in the Hello's capabilities as
// `hde:<name>@<version>`; a link uses a stage only when both sides announce
// the same name at the same version (the highest common one when a side
// runs several), and only when the stages it builds on survived too
// (dedup refers to chunks, so it needs cdc). Unknown or malformed entries are
// ignored, so a newer peer's stages never break an older one. negotiate is
// pure: no I/O, called once per link with the peer's Hello/HelloReply.

/** The encoding layers of HDE (DESIGN.md, "HDE: hierarchical data encoding"). */
export type StageName = 'cdc' | 'dedup' | 'delta' | 'dict' | 'zstd';

/** The stage names this build knows, in the order a payload passes them on the way out. */
export const STAGE_NAMES: ReadonlyArray<StageName> = ['cdc', 'dedup', 'delta', 'dict', 'zstd'];

/** One stage at one version of its wire format. */
export interface Stage {
  readonly name: StageName;
  /** Version of the stage's wire format; a change peers cannot read is a new version. */
  readonly version: number;
}

/** A set of stages (at most one version per name after negotiation). */
export type StageSet = ReadonlyArray<Stage>;

/** Prefix of every stage entry in Hello.capabilities. */
export const STAGE_CAPABILITY_PREFIX = 'hde:';

/**
 * The bare capability every build of protocol 1 has sent for zstd frames
 * (Encoding.ZSTD, ZSTD_STREAM); read as zstd@1 so peers that predate stage
 * entries keep compressing.
 */
export const LEGACY_ZSTD_CAPABILITY = 'zstd';

/** Largest stage version accepted from a peer (a bound on what we parse, not a policy). */
const MAX_STAGE_VERSION = 0xffff;

/** Stages a stage builds on: it is dropped when one of them is not used on the link. */
export const STAGE_REQUIRES: Readonly<Record<StageName, ReadonlyArray<StageName>>> = {
  cdc: [],
  // Chunk references name content-defined chunks.
  dedup: ['cdc'],
  // Delta bases ride on dedup@1's ChunkQuery/ChunkHave, and the rebuilt chunk is staged for a PutRecipe.
  delta: ['dedup'],
  dict: [],
  zstd: [],
};

/**
 * The stages this build announces: cdc@1 (src/encoding/hde/fastcdc.ts),
 * dedup@1 (ChunkQuery/ChunkHave, PutChunkData/PutRecipe) and delta@1
 * (DeltaBase, PutChunkDelta: src/encoding/hde/block-delta.ts), which the
 * objects stream answers (dir-source.ts sends by recipe, dir-sink.ts keeps
 * the chunk index and offers bases), dict@1 (PutDictionary, PutDictFile:
 * dictionary-store.ts) and zstd@1. A peer must never be told a stage nothing here would
 * answer.
 */
export const LOCAL_STAGES: StageSet = [
  { name: 'cdc', version: 1 },
  { name: 'dedup', version: 1 },
  { name: 'delta', version: 1 },
  { name: 'dict', version: 1 },
  { name: 'zstd', version: 1 },
];

/** The capability string of a stage: `hde:cdc@1`. */
export function stageCapability(stage: Stage): string {
  return `${STAGE_CAPABILITY_PREFIX}${stage.name}@${stage.version}`;
}

/** The capability strings of a set, for Hello.capabilities. */
export function stageCapabilities(stages: StageSet): string[] {
  return stages.map(stageCapability);
}

/** Parse one capability entry; null when it is not a stage this build knows (ignored, never an error). */
export function parseStageCapability(entry: string): Stage | null {
  if (entry === LEGACY_ZSTD_CAPABILITY) return { name: 'zstd', version: 1 };
  const match = /^hde:([a-z][a-z0-9-]{0,31})@([1-9][0-9]{0,5})$/.exec(entry);
  if (!match) return null;
  const name = match[1] as StageName;
  const version = Number(match[2]);
  if (!STAGE_NAMES.includes(name) || version > MAX_STAGE_VERSION) return null;
  return { name, version };
}

/**
 * The stages a link uses: per name, the highest version both local and the
 * peer's capabilities list, then without any stage whose prerequisites did
 * not survive. Ordered as STAGE_NAMES.
 */
export function negotiate(local: StageSet, remote: ReadonlyArray<string>): StageSet {
  // Common name@version pairs, highest version per name.
  const remoteKeys = new Set<string>();
  for (const entry of remote) {
    const stage = parseStageCapability(entry);
    if (stage) remoteKeys.add(`${stage.name}@${stage.version}`);
  }
  const chosen = new Map<StageName, number>();
  for (const stage of local) {
    if (!remoteKeys.has(`${stage.name}@${stage.version}`)) continue;
    const have = chosen.get(stage.name);
    if (have === undefined || stage.version > have) chosen.set(stage.name, stage.version);
  }

  // Drop stages whose prerequisites are gone, until nothing changes (the
  // dependency graph is tiny and acyclic, so this ends in a few passes).
  for (let changed = true; changed; ) {
    changed = false;
    for (const name of [...chosen.keys()]) {
      if (STAGE_REQUIRES[name].some((needed) => !chosen.has(needed))) {
        chosen.delete(name);
        changed = true;
      }
    }
  }
  return STAGE_NAMES.filter((name) => chosen.has(name)).map((name) => ({ name, version: chosen.get(name)! }));
}

/** The negotiated version of a stage, or null when the link does not use it. */
export function stageVersion(stages: StageSet, name: StageName): number | null {
  return stages.find((s) => s.name === name)?.version ?? null;
}
