/**
 * deploy/monitoring/: every alert rule and every dashboard query parses as
 * PromQL (Prometheus's own grammar, @prometheus-io/lezer-promql) and names
 * only series weft exports, with label matchers only on labels those series
 * carry — so a renamed metric breaks this test, not an operator's alerts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { parser } from '@prometheus-io/lezer-promql';
import { createMetrics, type MetricsStatus } from '../../src/control/metrics.js';
import { parsePromText } from '../control/prom-text.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const DIR = join(ROOT, 'deploy', 'monitoring');

/** A status that fills every weft family, so the exposition lists them all. */
const FULL: MetricsStatus = {
  version: '0.1.0', ready: true, leaseRenewals: { ok: 1, failed: 1 }, store: { kind: 'etcd', errors: 1 },
  lease: { subnet: '10.244.1.0/24', expiration: '2030-01-01T00:00:00.000Z' },
  offloads: { tunVnetHdr: true, udpGso: true, udpGro: true, path: 'offload' },
  routeEpoch: 1, routeCount: 1, workers: [{ index: 0, alive: true, restarts: 1 }],
  peers: [{ subnet: '10.244.2.0/24', publicIp: '192.168.100.2', txPackets: 1, txBytes: 1, rxPackets: 1, rxBytes: 1 }],
  ignoredPeers: [{ backendType: 'vxlan' }], routeFailures: [{}],
  totals: { tun_rx_packets: 1, udp_tx_packets: 1, tun_read_batches: 1, udp_recv_batches: 1, icmp_sent: 1, keep_warm_turns: 1 },
  drops: { no_route: 1 }, kernelDrops: { udpSocket: 1, tunQueue: 1 },
};

/** Exported series → the labels they carry (histogram and summary families with their suffixes). */
async function exported(): Promise<Map<string, Set<string>>> {
  const fams = parsePromText(await createMetrics(() => FULL, { perPeer: true }).render());
  const out = new Map<string, Set<string>>();
  for (const f of fams.values()) {
    const labels = new Set(f.samples.flatMap((s) => Object.keys(s.labels)));
    const names = f.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((x) => f.name + x)
      : f.type === 'summary' ? [f.name, `${f.name}_sum`, `${f.name}_count`] : [f.name];
    for (const n of names) out.set(n, labels);
  }
  return out;
}

interface Selector { metric: string; labels: string[] }

/** Parses `expr` (Grafana's $__ variables filled in); throws on a syntax error; returns its vector selectors. */
function selectors(expr: string): Selector[] {
  const text = expr.replace(/\$__(rate_interval|interval|range)/g, '5m');
  const tree = parser.parse(text);
  const found: Selector[] = [];
  let error = -1;
  tree.iterate({
    enter: (n) => {
      if (n.type.isError && error < 0) error = n.from;
      if (n.name !== 'VectorSelector') return;
      const id = n.node.getChild('Identifier');
      const labels: string[] = [];
      const matchers = n.node.getChild('LabelMatchers');
      for (let c = matchers?.firstChild ?? null; c !== null; c = c.nextSibling) {
        const ln = c.getChild('LabelName');
        if (ln !== null) labels.push(text.slice(ln.from, ln.to));
      }
      if (id !== null) found.push({ metric: text.slice(id.from, id.to), labels });
    },
  });
  if (error >= 0) throw new Error(`PromQL syntax error at ${error}: ${text.slice(Math.max(0, error - 20), error)}⟨here⟩${text.slice(error, error + 20)}`);
  return found;
}

// Labels Prometheus adds to every scraped series (target labels).
const TARGET_LABELS = new Set(['instance', 'job']);

function check(where: string, expr: string, series: Map<string, Set<string>>): void {
  let sel: Selector[];
  try {
    sel = selectors(expr);
  } catch (e) {
    assert.fail(`${where}: ${(e as Error).message}\n${expr}`);
  }
  assert.ok(sel.length > 0, `${where}: names no series: ${expr}`);
  for (const s of sel) {
    const labels = series.get(s.metric);
    assert.ok(labels, `${where}: ${s.metric} is not a series weft exports`);
    for (const l of s.labels) assert.ok(labels.has(l) || TARGET_LABELS.has(l), `${where}: ${s.metric} has no label ${l}`);
  }
}

test('the checker itself: a syntax error, an unknown series and a wrong label each fail', async () => {
  const series = await exported();
  assert.throws(() => check('x', 'sum(rate(weft_drops_total[5m]', series));
  assert.throws(() => check('x', 'rate(weft_dropz_total[5m])', series), /weft_dropz_total is not a series/);
  assert.throws(() => check('x', 'weft_drops_total{reasn="no_route"}', series), /has no label reasn/);
  check('x', 'sum by (instance) (rate(weft_drops_total{reason="no_route",instance=~".*"}[$__rate_interval]))', series);
});

test('alert rules: valid groups, every rule named, labelled and described, every expression on exported series', async () => {
  const series = await exported();
  const doc = load(readFileSync(join(DIR, 'weft-alerts.yaml'), 'utf8')) as { groups: { name: string; rules: Record<string, unknown>[] }[] };
  const rules = doc.groups.flatMap((g) => g.rules);
  assert.ok(rules.length >= 10, `${rules.length} rules`);
  const names = new Set<string>();
  for (const r of rules) {
    const name = r.alert as string;
    assert.match(name, /^Weft[A-Za-z]+$/);
    assert.ok(!names.has(name), `${name} twice`);
    names.add(name);
    assert.ok(['critical', 'warning', 'info'].includes((r.labels as Record<string, string>).severity!), `${name} severity`);
    const ann = r.annotations as Record<string, string>;
    assert.ok(ann.summary && ann.description, `${name} has a summary and a description`);
    if (r.for !== undefined) assert.match(r.for as string, /^\d+[smh]$/, `${name} for`);
    check(`alert ${name}`, r.expr as string, series);
  }
});

test('dashboard: valid Grafana JSON, unique panel ids, every query on exported series', async () => {
  const series = await exported();
  const d = JSON.parse(readFileSync(join(DIR, 'weft-dashboard.json'), 'utf8')) as {
    uid: string; panels: { id: number; title: string; gridPos: object; targets: { expr: string; refId: string }[] }[];
    templating: { list: { name: string; query: string }[] };
  };
  assert.equal(d.uid, 'weft-overview');
  assert.equal(new Set(d.panels.map((p) => p.id)).size, d.panels.length, 'panel ids unique');
  for (const p of d.panels) {
    assert.ok(p.gridPos && p.targets.length > 0, p.title);
    for (const t of p.targets) check(`panel "${p.title}" ${t.refId}`, t.expr, series);
  }
  const inst = d.templating.list.find((v) => v.name === 'instance')!;
  assert.equal(/label_values\((\w+),/.exec(inst.query)?.[1], 'weft_build_info');
  // The dashboard works without --metrics-per-peer.
  assert.ok(!JSON.stringify(d).includes('weft_peer_'), 'no per-peer series');
});
