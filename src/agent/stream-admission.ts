// Who may open and write a received stream. A stream is opened, written and
// checkpointed only from its configured source region: the link's region is
// the one its certificate names (never a message's claim). When the config
// lets this agent read the source region's etcd (regions[].consensus), a
// StreamOpen is also accepted only at the epoch, and from the node, that the
// region's leader key names (source-epoch-check.ts).

import type { Logger } from 'pino';
import type { Config, RegionConfig } from '../config/config.ts';
import { readTlsFiles } from '../config/tls-files.ts';
import type { ConsensusStore } from '../consensus/consensus-store.ts';
import { EtcdStore } from '../consensus/etcd-store.ts';
import { leaderKey } from '../consensus/checkpoints.ts';
import { sourceEpochRefusal } from '../acp/source-epoch-check.ts';
import type { InboundLink } from '../transport/inbound-link.ts';
import type { StreamOpen } from '../wire/messages.ts';
import type { Metrics } from './metrics.ts';

/** What was refused (the metric's `message` label). */
export type RefusedMessage = 'open' | 'data' | 'epoch';

/** Thrown when the source region's consensus cannot be read: the caller closes the link (the sender retries). */
export class SourceConsensusUnavailableError extends Error {
  override name = 'SourceConsensusUnavailableError';
}

/** The checks in front of every receiver. */
export class StreamAdmission {
  private config: Config;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  /** Configured source region of each received (sub-)stream. */
  private readonly sourceRegions = new Map<string, string>();
  /** Read-only clients of source regions' etcd, connected on first use. */
  private readonly stores = new Map<string, Promise<ConsensusStore>>();

  constructor(config: Config, metrics: Metrics, logger: Logger) {
    this.config = config;
    this.metrics = metrics;
    this.logger = logger;
  }

  /** This agent receives streamId (a stream or one shard of it), sourced in sourceRegion. */
  receive(streamId: string, sourceRegion: string): void {
    this.sourceRegions.set(streamId, sourceRegion);
  }

  /** This agent no longer receives streamId (removed from the config while running). */
  forget(streamId: string): void {
    this.sourceRegions.delete(streamId);
  }

  /** The running config changed (reconcile.ts never lets a region's consensus change live). */
  reconfigure(config: Config): void {
    this.config = config;
  }

  /** Why link may not open or write streamId (logged and counted), or null. */
  regionRefusal(link: InboundLink, streamId: string, message: 'open' | 'data'): string | null {
    const sourceRegion = this.sourceRegions.get(streamId);
    if (link.peerRegion === sourceRegion) return null;
    const refusal = `stream "${streamId}" is sourced in region "${sourceRegion}"; this peer is certified for region "${link.peerRegion}"`;
    this.refused(link, streamId, message, refusal);
    return refusal;
  }

  /**
   * Why the source region's consensus did not give this epoch to this node
   * (logged and counted), or null (also when that consensus is not
   * configured). Throws SourceConsensusUnavailableError when it cannot be read.
   */
  async epochRefusal(link: InboundLink, open: StreamOpen): Promise<string | null> {
    const region = this.config.regions.find((r) => r.name === link.peerRegion);
    if (!region?.consensus) return null;
    let refusal: string | null;
    try {
      const store = await this.storeOf(region);
      refusal = await sourceEpochRefusal(store, { key: leaderKey(this.config.federation, open.streamId, this.config.region), epoch: open.epoch, node: link.peerNode });
    } catch (err) {
      throw new SourceConsensusUnavailableError(`read region ${region.name}'s consensus to verify epoch ${open.epoch}: ${(err as Error).message}`);
    }
    if (refusal !== null) this.refused(link, open.streamId, 'epoch', refusal);
    return refusal;
  }

  /** Close the clients of source regions' etcd. */
  async close(): Promise<void> {
    await Promise.all([...this.stores.values()].map((s) => s.then((store) => store.close()).catch(() => {})));
  }

  private refused(link: InboundLink, streamId: string, message: RefusedMessage, refusal: string): void {
    this.metrics.streamSourceRefusals.inc({ stream: streamId, peer_region: link.peerRegion, message });
    // Data frames are only counted: a peer sending many would flood the log.
    if (message !== 'data') this.logger.warn({ stream: streamId, peer: `${link.peerRegion}/${link.peerNode}`, message, refusal }, 'stream message refused');
  }

  // One client per source region; a failed connect is tried again on the next open.
  private storeOf(region: RegionConfig): Promise<ConsensusStore> {
    const existing = this.stores.get(region.name);
    if (existing) return existing;
    const consensus = region.consensus!;
    const index = this.config.regions.indexOf(region);
    const connecting = (async () => {
      const tls = consensus.tls ? await readTlsFiles(consensus.tls, `regions[${index}].consensus.tls`, this.config.source) : undefined;
      return EtcdStore.connect({ endpoints: consensus.endpoints, tls, callTimeoutMs: this.config.acp.callTimeoutMs });
    })();
    connecting.catch(() => {
      if (this.stores.get(region.name) === connecting) this.stores.delete(region.name);
    });
    this.stores.set(region.name, connecting);
    return connecting;
  }
}
