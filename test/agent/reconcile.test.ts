// diffConfig: the plan the one reconcile path applies. Pure: two compiled
// configs in, a plan out; no agent runs here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileConfig } from '../../src/config/load-config.ts';
import type { Config } from '../../src/config/config.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { diffConfig } from '../../src/agent/reconcile.ts';

const OPTIONS = { env: {}, baseDir: '/etc/dwcp', hostname: 'node-1', cpuCount: 2 };

/** A config of region eu-west with streams a (sent from here to us-east) and b (received from us-east). */
function input(): ConfigInput {
  return {
    federation: 'f',
    region: 'eu-west',
    tls: { ca: 'ca.pem', cert: 'c.pem', key: 'k.pem' },
    regions: [
      { name: 'eu-west', endpoints: ['10.0.0.1:7400'] },
      { name: 'us-east', endpoints: ['10.0.1.1:7400'] },
      { name: 'ap-south', endpoints: ['10.0.2.1:7400'] },
    ],
    streams: [
      { id: 'a', kind: 'objects', source: { region: 'eu-west', path: '/src/a' }, destinations: [{ region: 'us-east', path: '/dst/a' }] },
      { id: 'b', kind: 'objects', source: { region: 'us-east', path: '/src/b' }, destinations: [{ region: 'eu-west', path: '/dst/b' }] },
      { id: 'c', kind: 'objects', source: { region: 'eu-west', path: '/src/c' }, destinations: [{ region: 'ap-south', path: '/dst/c' }] },
    ],
  };
}

function compile(change: (i: ConfigInput) => void = () => {}): Config {
  const i = input();
  change(i);
  return compileConfig(i, OPTIONS);
}

const ids = (list: Array<{ id: string }>): string[] => list.map((s) => s.id);

test('the same config: nothing to do', () => {
  const diff = diffConfig(compile(), compile());
  assert.deepEqual(diff, { refused: [], added: [], removed: [], restarted: [], redial: [] });
});

test('a stream added, one removed, one retuned: only those three are touched', () => {
  const next = compile((i) => {
    i.streams!.splice(1, 1);
    i.streams![1].source.scanInterval = '5s';
    i.streams!.push({ id: 'd', kind: 'objects', source: { region: 'eu-west', path: '/src/d' }, destinations: [{ region: 'us-east', path: '/dst/d' }] });
  });
  const diff = diffConfig(compile(), next);
  assert.deepEqual(diff.refused, []);
  assert.deepEqual(ids(diff.added), ['d']);
  assert.deepEqual(ids(diff.removed), ['b']);
  assert.deepEqual(diff.restarted.map((r) => [r.stream.id, r.reason]), [['c', 'stream retuned']]);
  assert.deepEqual(diff.redial, []);
});

test('a peer region\'s endpoints change: its link redials and only the streams sent there restart', () => {
  const diff = diffConfig(compile(), compile((i) => (i.regions[2].endpoints = ['10.0.2.9:7400'])));
  assert.deepEqual(diff.refused, []);
  assert.deepEqual(diff.redial, ['ap-south']);
  assert.deepEqual(diff.restarted.map((r) => [r.stream.id, r.reason]), [['c', 'link to ap-south redials']]);
});

test('transport tuning redials every peer link; encoding tuning restarts every stream', () => {
  const amst = diffConfig(compile(), compile((i) => (i.amst = { carriers: 2 })));
  assert.deepEqual(amst.redial.sort(), ['ap-south', 'us-east']);
  assert.deepEqual(ids(amst.restarted.map((r) => r.stream)), ['a', 'c'], 'the received stream b keeps running');
  const hde = diffConfig(compile(), compile((i) => (i.hde = { level: 7 })));
  assert.deepEqual(hde.redial, []);
  assert.deepEqual(hde.restarted.map((r) => [r.stream.id, r.reason]), [['a', 'hde changed'], ['b', 'hde changed'], ['c', 'hde changed']]);
});

test('an SLO added to a stream restarts that stream only', () => {
  const diff = diffConfig(compile(), compile((i) => (i.streams![0].slo = { target: '30s' })));
  assert.deepEqual(ids(diff.restarted.map((r) => r.stream)), ['a']);
  assert.deepEqual(diff.restarted[0].stream.slo, { targetMs: 30_000, objective: 99.9 });
});

test('what cannot change live is refused with its field path, and nothing else is planned', () => {
  const diff = diffConfig(compile(), compile((i) => {
    i.region = 'us-east';
    i.acp = { backend: 'etcd', endpoints: ['127.0.0.1:2379'] };
    i.hde = { workers: 8 };
    i.regions[1].consensus = { endpoints: ['10.0.1.5:2379'] };
    i.streams!.pop();
  }));
  assert.deepEqual(diff.refused.map((r) => r.path), ['region', 'acp', 'hde.workers', 'regions[1].consensus']);
  assert.match(diff.refused[0].message, /cannot change while the agent runs/);
  assert.deepEqual([diff.added, diff.removed, diff.restarted, diff.redial], [[], [], [], []]);
});
