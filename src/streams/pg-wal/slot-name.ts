// Which replication slot a pg-wal destination uses. Each destination has
// its own slot (and its own WalSource and connection), so the primary keeps
// WAL until the slowest destination made it durable, and the senders of two
// destinations, which may be elected on different agents, never share a
// slot (PostgreSQL lets one connection at a time stream from a slot).
//
// Naming: the first destination in the stream's list keeps the configured
// slot name unchanged, so a deployment that had one destination keeps its
// slot (and the WAL it holds) when it upgrades or adds destinations behind
// it; every other destination uses "<slot>_<region>", the region lowercased
// with any character outside [a-z0-9_] as "_". Slots of destinations
// removed from the config stay on the primary and hold WAL until dropped.

/** Longest slot name PostgreSQL accepts (NAMEDATALEN - 1). */
export const MAX_SLOT_NAME_LENGTH = 63;

/** The slot of destination destIndex (0-based, in config order) in region destRegion. */
export function destinationSlotName(slot: string, destRegion: string, destIndex: number): string {
  if (destIndex === 0) return slot;
  const name = `${slot}_${destRegion.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
  if (name.length > MAX_SLOT_NAME_LENGTH) {
    throw new Error(`pg-wal slot for destination "${destRegion}": "${name}" is longer than ${MAX_SLOT_NAME_LENGTH} characters; shorten source.slot`);
  }
  return name;
}
