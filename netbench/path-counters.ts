// Bytes on the emulated link per replication path: iptables counting rules
// (no target) in one namespace, matching a TCP port on the lab's TUN device,
// so native streaming and the DWCP link are counted alike (IP bytes, both
// directions) while they share the link.

import { spawnSync } from 'node:child_process';

/** One path: traffic to or from a TCP port of the far or the near side. */
export interface PathSpec {
  name: string;
  /** TCP port that identifies the path's connections. */
  port: number;
  /** 'remote': the port is the peer's (we dial it); 'local': the port is ours (the peer dials it). */
  side: 'remote' | 'local';
}

/** Counting rules installed in one namespace. */
export class PathCounters {
  readonly #ns: string;
  readonly #paths: PathSpec[];

  private constructor(ns: string, paths: PathSpec[]) {
    this.#ns = ns;
    this.#paths = paths;
  }

  /** Append one OUTPUT and one INPUT rule per path (in path order) on device dev of namespace ns. */
  static install(ns: string, dev: string, paths: PathSpec[]): PathCounters {
    for (const p of paths) {
      const [outMatch, inMatch] = p.side === 'remote' ? ['--dport', '--sport'] : ['--sport', '--dport'];
      iptables(ns, ['-A', 'OUTPUT', '-o', dev, '-p', 'tcp', outMatch, String(p.port)]);
      iptables(ns, ['-A', 'INPUT', '-i', dev, '-p', 'tcp', inMatch, String(p.port)]);
    }
    return new PathCounters(ns, paths);
  }

  /** Bytes so far per path name, both directions. */
  read(): Record<string, number> {
    const out = chainBytes(this.#ns, 'OUTPUT');
    const inp = chainBytes(this.#ns, 'INPUT');
    if (out.length < this.#paths.length || inp.length < this.#paths.length) throw new Error(`path counters: rules missing in namespace ${this.#ns}`);
    return Object.fromEntries(this.#paths.map((p, i) => [p.name, out[i] + inp[i]]));
  }
}

/** Run iptables in a namespace; throws with its stderr. */
function iptables(ns: string, args: string[]): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'iptables', '-w', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`path counters: iptables ${args.join(' ')} in ${ns}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Byte counters of a chain's rules, in rule order. */
function chainBytes(ns: string, chain: string): number[] {
  return iptables(ns, ['-nvxL', chain]).split('\n').slice(2).filter((l) => l.trim()).map((l) => Number(l.trim().split(/\s+/)[1]));
}
