// The two custom resources, DWCPFederation and DWCPStream, as TypeBox
// schemas built from the config file's schema (src/config/schema.ts): a
// federation's spec is the config's top-level object minus the streams and
// minus what belongs to one node; a stream's spec is one entry of the
// config's `streams` plus the federation it belongs to. The CRDs'
// openAPIV3Schema is generated from these (crd-generate.ts), so the file,
// the CRs and the code's types have one source.

import { Type, type Static } from '@sinclair/typebox';
import { ConfigSchema, StreamSchema } from '../config/schema.ts';

/** API group of the DWCP custom resources. */
export const CRD_GROUP = 'dwcp.io';
/** The one served and stored version of both custom resources. */
export const CRD_VERSION = 'v1alpha1';
/** `apiVersion` of a DWCP custom resource. */
export const CRD_API_VERSION = `${CRD_GROUP}/${CRD_VERSION}`;

/** Names of the DWCPFederation resource (namespaced). */
export const FEDERATION_NAMES = {
  kind: 'DWCPFederation',
  listKind: 'DWCPFederationList',
  plural: 'dwcpfederations',
  singular: 'dwcpfederation',
  shortNames: ['dwcpfed'],
} as const;

/** Names of the DWCPStream resource (namespaced). */
export const STREAM_NAMES = {
  kind: 'DWCPStream',
  listKind: 'DWCPStreamList',
  plural: 'dwcpstreams',
  singular: 'dwcpstream',
  shortNames: ['dwcps'],
} as const;

/**
 * Config fields that describe one node, not the federation: they stay in the
 * node's own config (the DaemonSet's file and environment) and are not part
 * of DWCPFederation's spec. `region` and `tls` belong here because the
 * agent's certificate names its region and node (docs/identity.md), and
 * each node mounts its own certificate files.
 */
export const NODE_LOCAL_FIELDS = ['region', 'nodeId', 'dataDir', 'listen', 'listenWs', 'listenQuic', 'http', 'tls'] as const;

/** Config fields that move to DWCPStream resources instead. */
export const STREAM_FIELDS = ['streams'] as const;

/** Condition types of a DWCPStream's status. */
export const STREAM_CONDITION_TYPES = ['Ready', 'Progressing', 'Degraded'] as const;

/** Condition status words (Kubernetes convention). */
export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

/**
 * An RFC 3339 timestamp, as metav1.Time writes it. A pattern rather than
 * `format: date-time`, which TypeBox's Value.Check refuses unless a format
 * is registered.
 */
export const RFC3339_PATTERN = '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$';

/** One status condition, as metav1.Condition. */
export const ConditionSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, description: 'Condition type: Ready, Progressing or Degraded on a DWCPStream.' }),
    status: Type.Union(CONDITION_STATUSES.map((s) => Type.Literal(s)), { description: 'True, False or Unknown.' }),
    reason: Type.Optional(Type.String({ maxLength: 1024, description: 'One CamelCase word saying why (e.g. LinkDown, VerifyFailed, Halted).' })),
    message: Type.Optional(Type.String({ maxLength: 32768, description: 'Human-readable details.' })),
    lastTransitionTime: Type.Optional(Type.String({ pattern: RFC3339_PATTERN, description: 'When status last changed (RFC 3339, e.g. 2026-01-02T03:04:05Z).' })),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation this condition was computed from.' })),
  },
  { additionalProperties: false },
);

// Conditions as a list keyed by type (server-side apply merges by type).
const Conditions = (description: string) =>
  Type.Array(ConditionSchema, {
    description,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  });

/** DWCPFederation's spec: the config file's top-level object minus streams and node-local fields. */
export const FederationSpecSchema = Type.Omit(ConfigSchema, [...NODE_LOCAL_FIELDS, ...STREAM_FIELDS], {
  additionalProperties: false,
  description: 'The federation: regions and their endpoints, amst/hde/acp/checkpoint tuning. Same fields as the config file, without streams (DWCPStream) and without node-local fields (region, nodeId, dataDir, listen, listenWs, listenQuic, http, tls: the node\'s own config).',
});

/** DWCPFederation's status: conditions and whatever agents report (free-form). */
export const FederationStatusSchema = Type.Object(
  {
    conditions: Type.Optional(Conditions('Federation-wide conditions.')),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation last applied by the agents.' })),
  },
  {
    description: 'Written by agents. Fields beyond conditions are free-form.',
    'x-kubernetes-preserve-unknown-fields': true,
  },
);

/** DWCPStream's spec: exactly one entry of the config's `streams`, plus its federation. */
export const StreamSpecSchema = Type.Object(
  {
    federation: Type.String({
      ...ConfigSchema.properties.federation,
      description: 'metadata.name of the DWCPFederation (same namespace) this stream belongs to. Required.',
    }),
    ...StreamSchema.properties,
  },
  { additionalProperties: false, description: 'One stream, as one entry of the config file\'s streams, plus the DWCPFederation (same namespace) it belongs to.' },
);

/** Replication state of one destination of a stream, as its sender sees it. */
export const StreamDestinationStatusSchema = Type.Object(
  {
    region: Type.String({ minLength: 1, description: 'Destination region.' }),
    durablePosition: Type.Optional(Type.String({ description: 'Last position the destination made durable (a WAL LSN like 0/3000148, or an objects sequence number), as text.' })),
    lagBytes: Type.Optional(Type.Integer({ minimum: 0, description: 'Bytes the source holds that the destination has not made durable.' })),
    lagSeconds: Type.Optional(Type.Number({ minimum: 0, description: 'Age of the oldest change not yet durable at the destination, in seconds.' })),
    sloAttainment: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Share of changes made durable within the SLO target (0..1), as dwcp_slo_attainment_ratio.' })),
    lastError: Type.Optional(Type.String({ description: 'Last error of this destination\'s session; empty when none.' })),
  },
  { additionalProperties: false },
);

/** DWCPStream's status, written by the stream's elected sender. */
export const StreamStatusSchema = Type.Object(
  {
    conditions: Type.Optional(Conditions('Ready, Progressing and Degraded (with reason).')),
    sender: Type.Optional(Type.String({ description: 'Node of the elected sender that wrote this status.' })),
    lagSeconds: Type.Optional(Type.Number({ minimum: 0, description: 'Largest lagSeconds over destinations (the Lag column).' })),
    destinations: Type.Optional(Type.Array(StreamDestinationStatusSchema, {
      description: 'One entry per destination region.',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['region'],
    })),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'metadata.generation the sender last applied.' })),
  },
  { additionalProperties: false, description: 'Written by the elected sender of the stream.' },
);

/** What a DWCPFederation's spec holds. */
export type FederationSpec = Static<typeof FederationSpecSchema>;
/** What a DWCPFederation's status holds (its known fields). */
export type FederationStatus = Static<typeof FederationStatusSchema>;
/** What a DWCPStream's spec holds. */
export type StreamSpec = Static<typeof StreamSpecSchema>;
/** What a DWCPStream's status holds. */
export type StreamStatus = Static<typeof StreamStatusSchema>;
/** One destination's entry in a DWCPStream's status. */
export type StreamDestinationStatus = Static<typeof StreamDestinationStatusSchema>;
/** One status condition. */
export type Condition = Static<typeof ConditionSchema>;
