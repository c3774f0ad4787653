// Kubernetes mode of live configuration: the agent follows its
// DWCPFederation and the DWCPStreams naming it (CrWatch each) and composes
// them with its node-local fields (region, nodeId, dataDir, listen, http,
// tls: the DaemonSet's own file) into one ConfigInput, checked and compiled
// by the same code as the file (compileConfig). A stream CR whose spec does
// not validate is left out (or kept at its last accepted spec) and refused
// on its own: an Event naming the field path and a Degraded condition; the
// others still apply. A federation spec that does not validate refuses the
// whole change with an Event; the running config stays.

import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ConfigError, formatIssue, type ConfigIssue } from '../config/config-error.ts';
import type { Config } from '../config/config.ts';
import { compileConfig, type ConfigOptions } from '../config/load-config.ts';
import type { BackoffOptions } from '../util/backoff.ts';
import { CrWatch } from './cr-watch.ts';
import { CRD_API_VERSION, CRD_GROUP, CRD_VERSION, FEDERATION_NAMES, STREAM_NAMES } from './crd-schema.ts';
import { postWarningEvent, type InvolvedObject } from './status-writer.ts';

/** Quiet time after a CR event before the config is composed, ms (a list delivers many at once). */
export const COMPOSE_DEBOUNCE_MS = 100;

/** Event reason of a spec that does not validate. */
export const REASON_INVALID_SPEC = 'InvalidSpec';
/** Event reason of a valid change the agent cannot apply live. */
export const REASON_CHANGE_REFUSED = 'ChangeRefused';

/** Options of the Kubernetes config source. */
export interface KubeConfigSourceOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** metadata.name of this agent's DWCPFederation. */
  federation: string;
  /** The node-local part of the config as written (region, nodeId, dataDir, listen, http, tls); it wins over the federation's spec. */
  nodeLocal: Record<string, unknown>;
  load?: ConfigOptions;
  /** A composed, valid config that differs from the last one handed on. */
  onConfig(config: Config): Promise<void> | void;
  /** A spec that did not validate was refused (counted by the caller). */
  onInvalid?(): void;
  logger: Logger;
  retry: BackoffOptions;
}

type Resource = KubernetesObject & { spec?: Record<string, unknown> };

/** Follows the federation's CRs and hands on each new valid config. */
export class KubeConfigSource {
  private readonly options: KubeConfigSourceOptions;
  private readonly federations: CrWatch;
  private readonly streams: CrWatch;
  private timer: NodeJS.Timeout | null = null;
  private composing: Promise<void> = Promise.resolve();
  private lastConfig: string | null = null;
  private latestConfig: Config | null = null;
  /** Last accepted spec per stream CR name (kept when a new spec is refused). */
  private readonly accepted = new Map<string, { spec: Record<string, unknown>; generation?: number }>();
  /** Why each refused stream CR's current spec was refused (by CR name). */
  private readonly problems = new Map<string, string>();
  /** Refusals already reported, so a resync does not repeat the Event. */
  private readonly reported = new Set<string>();
  /** Stream id -> CR name and the generation running. */
  private readonly resources = new Map<string, { name: string; generation?: number }>();
  /** Resolves with the first valid config. */
  private first: { resolve(config: Config): void; promise: Promise<Config> };

  constructor(options: KubeConfigSourceOptions) {
    this.options = options;
    const common = { kubeConfig: options.kubeConfig, group: CRD_GROUP, version: CRD_VERSION, namespace: options.namespace, logger: options.logger, retry: options.retry, onChange: () => this.schedule() };
    this.federations = new CrWatch({ ...common, plural: FEDERATION_NAMES.plural });
    this.streams = new CrWatch({ ...common, plural: STREAM_NAMES.plural });
    let resolve!: (config: Config) => void;
    this.first = { resolve: (c) => resolve(c), promise: new Promise<Config>((r) => (resolve = r)) };
  }

  /** Start following; resolves with the first valid config (waits for the DWCPFederation to exist and validate). */
  async start(): Promise<Config> {
    await Promise.all([this.federations.start(), this.streams.start()]);
    this.schedule();
    return this.first.promise;
  }

  /** The last valid config composed (null before the first). */
  latest(): Config | null {
    return this.latestConfig;
  }

  /** CR name and generation of a running stream. */
  resourceOf(streamId: string): { name: string; generation?: number } | undefined {
    return this.resources.get(streamId);
  }

  /** Why the current spec of a stream's CR was refused (its last accepted spec runs), or null. */
  specProblem(streamId: string): string | null {
    const name = this.resources.get(streamId)?.name;
    return name === undefined ? null : this.problems.get(name) ?? null;
  }

  /** Refused stream CRs that run nothing (new and invalid): name -> reason. */
  refusedWithoutConfig(): Map<string, string> {
    const running = new Set([...this.resources.values()].map((r) => r.name));
    return new Map([...this.problems].filter(([name]) => !running.has(name)));
  }

  /** The agent refused a valid config (it cannot change live): an Event on the federation. */
  async refused(issues: readonly ConfigIssue[]): Promise<void> {
    const message = issues.map((i) => formatIssue(`${FEDERATION_NAMES.kind}/${this.options.federation}`, i)).join('; ');
    await this.report(this.federationObject(), REASON_CHANGE_REFUSED, message);
  }

  /** Stop following. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([this.federations.close(), this.streams.close()]);
    await this.composing;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.composing = this.composing.then(() => this.compose()).catch((err: Error) => this.options.logger.error({ err: err.message }, 'composing the config failed'));
    }, COMPOSE_DEBOUNCE_MS);
    this.timer.unref();
  }

  // Compose, check and hand on; refuse bad stream specs one by one, a bad federation as a whole.
  private async compose(): Promise<void> {
    const federation = (this.federations.items() as Resource[]).find((f) => f.metadata?.name === this.options.federation);
    if (!federation) {
      this.options.logger.warn({ federation: this.options.federation, namespace: this.options.namespace }, 'DWCPFederation not found; the running config stays');
      return;
    }
    const crs = (this.streams.items() as Resource[])
      .filter((s) => s.spec?.federation === this.options.federation)
      .sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
    let candidates = crs.map((cr) => ({ cr, spec: cr.spec!, generation: cr.metadata?.generation }));
    const refusedNow = new Map<string, string>();
    for (let round = 0; ; round++) {
      try {
        const config = compileConfig(this.input(federation, candidates.map((c) => c.spec)), this.options.load, `${FEDERATION_NAMES.kind}/${this.options.federation}`);
        await this.accept(config, candidates, refusedNow);
        return;
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        const { byStream, rest } = splitIssues(err.issues);
        // The federation's own spec (or node-local fields) is wrong: refuse everything.
        if (rest.length > 0 || byStream.size === 0 || round > 0) {
          const message = (rest.length > 0 ? rest : err.issues).map((i) => formatIssue(err.source, i)).join('; ');
          await this.report(objectOf(federation), REASON_INVALID_SPEC, message);
          return;
        }
        // Bad stream specs: each falls back to its last accepted spec, or out.
        candidates = candidates.flatMap((c, i) => {
          const issues = byStream.get(i);
          if (!issues) return [c];
          const name = c.cr.metadata!.name!;
          refusedNow.set(name, issues.map((issue) => formatIssue(`${STREAM_NAMES.kind}/${name}`, { ...issue, path: `spec${issue.path === '' ? '' : `.${issue.path}`}` })).join('; '));
          const previous = this.accepted.get(name);
          return previous ? [{ cr: c.cr, spec: previous.spec, generation: previous.generation }] : [];
        });
      }
    }
  }

  // A valid config: remember what runs, report the refusals, hand it on when it changed.
  private async accept(config: Config, candidates: Array<{ cr: Resource; spec: Record<string, unknown>; generation?: number }>, refusedNow: Map<string, string>): Promise<void> {
    this.problems.clear();
    for (const [name, message] of refusedNow) this.problems.set(name, message);
    this.resources.clear();
    for (const c of candidates) {
      const name = c.cr.metadata!.name!;
      this.resources.set(String(c.spec.id), { name, generation: c.generation });
      if (!refusedNow.has(name)) this.accepted.set(name, { spec: c.spec, generation: c.generation });
    }
    for (const [name, message] of refusedNow) {
      const cr = candidates.find((c) => c.cr.metadata!.name === name)?.cr ?? (this.streams.items() as Resource[]).find((s) => s.metadata?.name === name);
      if (cr) await this.report(objectOf(cr), REASON_INVALID_SPEC, message);
    }
    const text = JSON.stringify({ ...config, source: '' });
    if (text === this.lastConfig) return;
    this.lastConfig = text;
    this.latestConfig = config;
    this.first.resolve(config);
    await this.options.onConfig(config);
  }

  // The config as a user would write it: federation spec, node-local fields, streams.
  private input(federation: Resource, streams: Array<Record<string, unknown>>): Record<string, unknown> {
    return composeConfigInput(this.options.federation, federation.spec ?? {}, this.options.nodeLocal, streams);
  }

  private federationObject(): InvolvedObject {
    const cr = (this.federations.items() as Resource[]).find((f) => f.metadata?.name === this.options.federation);
    return cr ? objectOf(cr) : { apiVersion: CRD_API_VERSION, kind: FEDERATION_NAMES.kind, name: this.options.federation, namespace: this.options.namespace };
  }

  // One log line and one Event per (object, generation, message).
  private async report(object: InvolvedObject & { generation?: number }, reason: string, message: string): Promise<void> {
    const key = `${object.kind}/${object.name}/${object.generation ?? ''}/${message}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.options.logger.error({ resource: `${object.kind}/${object.name}`, reason, refused: message }, 'change refused; the running config stays');
    if (reason === REASON_INVALID_SPEC) this.options.onInvalid?.();
    const { generation: _g, ...involved } = object;
    const host = String(this.options.nodeLocal.nodeId ?? this.options.load?.hostname ?? '');
    await postWarningEvent(this.options.kubeConfig, involved, reason, message, { component: 'dwcp-agent', host }, this.options.logger);
  }
}

/**
 * The config as a user would write it, composed from a DWCPFederation's spec,
 * this node's fields (they win over the spec) and the DWCPStreams' specs
 * (their `federation` dropped); federation is the DWCPFederation's name.
 * Check and compile it with compileConfig.
 */
export function composeConfigInput(federation: string, federationSpec: Record<string, unknown>, nodeLocal: Record<string, unknown>, streamSpecs: ReadonlyArray<Record<string, unknown>>): Record<string, unknown> {
  const streams = streamSpecs.map(({ federation: _f, ...stream }) => stream);
  return { ...federationSpec, ...nodeLocal, federation, streams };
}

/** Issues of the composed config split by the stream CR they are about (index in streams) and the rest. */
export function splitIssues(issues: readonly ConfigIssue[]): { byStream: Map<number, ConfigIssue[]>; rest: ConfigIssue[] } {
  const byStream = new Map<number, ConfigIssue[]>();
  const rest: ConfigIssue[] = [];
  for (const issue of issues) {
    const m = /^streams\[(\d+)\]\.?(.*)$/.exec(issue.path);
    if (!m) {
      rest.push(issue);
      continue;
    }
    const list = byStream.get(Number(m[1])) ?? [];
    list.push({ ...issue, path: m[2] });
    byStream.set(Number(m[1]), list);
  }
  return { byStream, rest };
}

// The Event's involvedObject of a CR.
function objectOf(cr: Resource): InvolvedObject & { generation?: number } {
  const m = cr.metadata!;
  return { apiVersion: cr.apiVersion ?? CRD_API_VERSION, kind: cr.kind ?? '', name: m.name!, namespace: m.namespace ?? '', ...(m.uid ? { uid: m.uid } : {}), generation: m.generation };
}
