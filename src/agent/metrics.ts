// Prometheus metrics of one agent, on its own registry (so two agents in one
// process, as in the demo, do not collide). Names follow Prometheus
// conventions: _total for counters, base units (bytes, seconds).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** All metrics an agent exports at /metrics. */
export class Metrics {
  readonly registry = new Registry();

  /** Plaintext bytes acknowledged durable by a destination (goodput). */
  readonly goodputBytes = new Counter({ name: 'dwcp_goodput_bytes_total', help: 'Plaintext bytes acknowledged durable by the destination', labelNames: ['stream', 'destination'], registers: [this.registry] });
  /** Bytes written to carriers (after encoding, with framing). */
  readonly wireBytesSent = new Counter({ name: 'dwcp_wire_bytes_sent_total', help: 'Bytes written to carriers, framed and encoded', labelNames: ['peer'], registers: [this.registry] });
  readonly wireBytesReceived = new Counter({ name: 'dwcp_wire_bytes_received_total', help: 'Bytes read from carriers, framed and encoded', labelNames: ['peer'], registers: [this.registry] });
  readonly framesSent = new Counter({ name: 'dwcp_frames_sent_total', help: 'Data frames sent (first transmission)', labelNames: ['stream'], registers: [this.registry] });
  readonly framesResent = new Counter({ name: 'dwcp_frames_resent_total', help: 'Data frames sent again, by reason (carrier_lost, nack, hedge)', labelNames: ['stream', 'reason'], registers: [this.registry] });
  readonly framesApplied = new Counter({ name: 'dwcp_frames_applied_total', help: 'Data frames verified and applied to a sink', labelNames: ['stream'], registers: [this.registry] });
  readonly framesDuplicate = new Counter({ name: 'dwcp_frames_duplicate_total', help: 'Data frames dropped because their sequence number was already received', labelNames: ['stream'], registers: [this.registry] });
  readonly framesFenced = new Counter({ name: 'dwcp_frames_fenced_total', help: 'Data frames or sessions refused because of an old leadership epoch', labelNames: ['stream'], registers: [this.registry] });
  readonly verifyFailures = new Counter({ name: 'dwcp_verify_failures_total', help: 'Frames whose plaintext digest did not match (never applied)', labelNames: ['stream'], registers: [this.registry] });
  readonly protocolErrors = new Counter({ name: 'dwcp_protocol_errors_total', help: 'Connections closed because the peer sent something malformed or refused', labelNames: ['reason'], registers: [this.registry] });
  /** Peers refused at the Hello because their certificate did not name what they claimed (problem: no_identity, federation, region, node, own_region). */
  readonly peerIdentityRefusals = new Counter({ name: 'dwcp_peer_identity_refusals_total', help: 'Connections refused at the Hello because the peer certificate does not name the claimed federation, region and node', labelNames: ['problem'], registers: [this.registry] });
  /** StreamOpen or DataFrame messages refused because the peer's certified region is not the stream's source region. */
  readonly streamSourceRefusals = new Counter({ name: 'dwcp_stream_source_refusals_total', help: 'Stream opens and data frames refused because the peer is not certified for the stream source region', labelNames: ['stream', 'peer_region', 'message'], registers: [this.registry] });
  /** Certificate file reloads (result: loaded, rejected). */
  readonly certificateReloads = new Counter({ name: 'dwcp_certificate_reloads_total', help: 'Changed certificate files loaded or rejected (rejected keeps the old certificates)', labelNames: ['result'], registers: [this.registry] });
  readonly checkpoints = new Counter({ name: 'dwcp_checkpoints_total', help: 'Checkpoints committed to the region consensus', labelNames: ['stream'], registers: [this.registry] });
  readonly streamHalted = new Gauge({ name: 'dwcp_stream_halted', help: '1 when a stream is halted until an operator acts (repeated verification failures, divergence or an impossible resume position, a sink refusal)', labelNames: ['stream'], registers: [this.registry] });
  /** Faults of one stream by side (sender, receiver) and reason (an errno code such as ENOSPC, or open_timeout, open_refused, sink_refused, diverged, error). */
  readonly streamFaults = new Counter({ name: 'dwcp_stream_faults_total', help: 'Faults that stopped one stream session (the stream retries with backoff or halts), by side and reason', labelNames: ['stream', 'side', 'reason'], registers: [this.registry] });
  /** 1 while a stream waits to retry after a fault whose cause may pass. */
  readonly streamRetrying = new Gauge({ name: 'dwcp_stream_retrying', help: '1 while a stream is stopped by a fault that may pass (ENOSPC, EIO, ...) and retries with backoff', labelNames: ['stream', 'side'], registers: [this.registry] });
  readonly carriers = new Gauge({ name: 'dwcp_carriers', help: 'Live carriers per link', labelNames: ['peer', 'direction'], registers: [this.registry] });
  readonly linkInflightBytes = new Gauge({ name: 'dwcp_link_inflight_bytes', help: 'Bytes sent and not yet acknowledged delivered (or durable, by a peer without delivery acknowledgements)', labelNames: ['peer'], registers: [this.registry] });
  readonly linkDeliveredFrames = new Counter({ name: 'dwcp_link_delivered_frames_total', help: 'Data frames the peer reported delivered (held, not yet durable)', labelNames: ['peer'], registers: [this.registry] });
  readonly linkDeliveredBytes = new Counter({ name: 'dwcp_link_delivered_bytes_total', help: 'Framed bytes of data frames the peer reported delivered', labelNames: ['peer'], registers: [this.registry] });
  readonly linkDeliveredNotDurableBytes = new Gauge({ name: 'dwcp_link_delivered_not_durable_bytes', help: 'Bytes delivered to the peer and not yet acknowledged durable (bounded by the hold the peer announced)', labelNames: ['peer'], registers: [this.registry] });
  /** Consensus watches that broke and were resumed (reason: disconnected, canceled by etcd e.g. after compaction). */
  readonly consensusWatchRestarts = new Counter({ name: 'dwcp_consensus_watch_restarts_total', help: 'Consensus store watches that broke and were resumed, by reason (disconnected, canceled)', labelNames: ['reason'], registers: [this.registry] });
  readonly linkTransport = new Gauge({ name: 'dwcp_link_transport', help: 'Carrier kind of each outbound link\'s session (1 for the kind in use, 0 for the others)', labelNames: ['peer', 'kind'], registers: [this.registry] });
  /** amst.transport auto: the kind each link runs and why (path-choice.ts reasons, first_connected before a probe decided). */
  readonly linkTransportInfo = new Gauge({ name: 'dwcp_link_transport_info', help: 'Carrier kind of each outbound link and why it was chosen (1 for the current kind and reason)', labelNames: ['peer', 'kind', 'reason'], registers: [this.registry] });
  readonly linkProbeGoodput = new Gauge({ name: 'dwcp_link_probe_goodput_bytes_per_second', help: 'Goodput the last transport probe measured per carrier kind (0: the kind did not answer)', labelNames: ['peer', 'kind'], registers: [this.registry] });
  readonly linkProbes = new Counter({ name: 'dwcp_link_transport_probes_total', help: 'Transport probes run by amst.transport auto, by reason (first, schedule, confirm, kind_failed, rtt_shift, loss_shift)', labelNames: ['peer', 'reason'], registers: [this.registry] });
  readonly linkReconnects = new Counter({ name: 'dwcp_link_reconnects_total', help: 'Link sessions started after the first', labelNames: ['peer'], registers: [this.registry] });
  readonly streamLagFrames = new Gauge({ name: 'dwcp_stream_lag_frames', help: 'Frames sent but not yet acknowledged durable', labelNames: ['stream', 'destination'], registers: [this.registry] });
  readonly streamLagSeconds = new Gauge({ name: 'dwcp_stream_lag_seconds', help: 'Age of the oldest frame not yet acknowledged durable', labelNames: ['stream', 'destination'], registers: [this.registry] });
  readonly durableSeq = new Gauge({ name: 'dwcp_stream_durable_seq', help: 'Last sequence number durable at the destination', labelNames: ['stream', 'destination'], registers: [this.registry] });
  readonly hdeLevel = new Gauge({ name: 'dwcp_hde_level', help: 'zstd level the sender encodes with now (0 = no compression)', labelNames: ['stream', 'destination'], registers: [this.registry] });
  readonly ackLatency = new Histogram({ name: 'dwcp_ack_latency_seconds', help: 'Time from sending a frame to its durable acknowledgement', labelNames: ['destination'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });
  /** Per acknowledged frame: from the source handing the change over to its durable acknowledgement by the destination (replication-slo.ts). */
  readonly replicationDelay = new Histogram({ name: 'dwcp_replication_delay_seconds', help: 'Time from a change being read at the source to its durable acknowledgement by the destination region', labelNames: ['stream', 'destination'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600], registers: [this.registry] });
  /** Share of the last hour's changes durable within the stream's slo.target (only streams with an slo). */
  readonly sloAttainment = new Gauge({ name: 'dwcp_slo_attainment_ratio', help: 'Share of changes over the last hour made durable at the destination within the stream SLO target', labelNames: ['stream', 'destination'], registers: [this.registry] });
  /** Live config changes by result: applied, refused (cannot apply live), invalid (did not validate). */
  readonly configChanges = new Counter({ name: 'dwcp_config_changes_total', help: 'Config changes seen while running (file or CRs), by result: applied, refused (cannot change live), invalid (did not validate)', labelNames: ['result'], registers: [this.registry] });
  /** AMST controller: carriers it asks for, per link. */
  readonly amstCarriersTarget = new Gauge({ name: 'dwcp_amst_carriers_target', help: 'Carriers the AMST controller asks for', labelNames: ['peer'], registers: [this.registry] });
  readonly amstDecisions = new Counter({ name: 'dwcp_amst_decisions_total', help: 'AMST controller decisions by reason (grow, shed, queue, cap, hold, ...)', labelNames: ['peer', 'reason'], registers: [this.registry] });
  readonly amstGoodput = new Gauge({ name: 'dwcp_amst_goodput_bytes_per_second', help: 'Acknowledged bytes per second measured by the AMST controller', labelNames: ['peer'], registers: [this.registry] });
  readonly amstRtt = new Gauge({ name: 'dwcp_amst_rtt_seconds', help: 'Mean smoothed RTT of the link carriers (TCP_INFO)', labelNames: ['peer'], registers: [this.registry] });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'dwcp_process_' });
  }
}
