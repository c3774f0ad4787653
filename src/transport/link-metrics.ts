// What links count, as a narrow interface at the transport's own level: the
// agent's Metrics (prom-client counters and gauges) fits it, and the
// transport layer imports nothing from the agent.

/** A counter with labels. */
export interface LabeledCounter<L extends string> {
  inc(labels: Partial<Record<L, string>>, value?: number): void;
}

/** A gauge with labels. */
export interface LabeledGauge<L extends string> {
  set(labels: Partial<Record<L, string>>, value: number): void;
}

/** The metrics outbound and inbound links update. */
export interface LinkMetrics {
  wireBytesSent: LabeledCounter<'peer'>;
  wireBytesReceived: LabeledCounter<'peer'>;
  linkInflightBytes: LabeledGauge<'peer'>;
  carriers: LabeledGauge<'peer' | 'direction'>;
  protocolErrors: LabeledCounter<'reason'>;
  framesResent: LabeledCounter<'stream' | 'reason'>;
  linkReconnects: LabeledCounter<'peer'>;
  linkTransport: LabeledGauge<'peer' | 'kind'>;
  /** Data frames and bytes the peer reported delivered (amst:delivered@1). */
  linkDeliveredFrames: LabeledCounter<'peer'>;
  linkDeliveredBytes: LabeledCounter<'peer'>;
  /** Bytes delivered and not yet durable (the peer holds them; bounded by its announced hold). */
  linkDeliveredNotDurableBytes: LabeledGauge<'peer'>;
}
