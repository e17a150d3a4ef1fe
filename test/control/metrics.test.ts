import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics, type MetricsStatus } from '../../src/control/metrics.js';
import { DROP_REASON_NAMES } from '../../src/wire/drop-reason.js';
import { parsePromText, sampleValue } from './prom-text.js';

function status(scale: number): MetricsStatus {
  return {
    version: '0.1.0',
    ready: scale > 0,
    leaseRenewals: { ok: 2 * scale, failed: scale },
    store: { kind: 'etcd', errors: 4 * scale },
    lease: { subnet: '10.244.1.0/24', expiration: '2030-01-01T00:00:00.000Z' },
    offloads: { tunVnetHdr: false, udpGso: false, udpGro: false, path: 'batched-per-packet' },
    routeEpoch: 3 * scale,
    routeCount: 3,
    workers: [{ index: 0, alive: true, restarts: 0 }, { index: 1, alive: scale < 2, restarts: scale - 1 }],
    peers: [
      { subnet: '10.244.2.0/24', publicIp: '192.168.100.2', txPackets: 10 * scale, txBytes: 1000 * scale, rxPackets: 9 * scale, rxBytes: 900 * scale },
      { subnet: '10.244.3.0/24', publicIp: '192.168.100.3', txPackets: scale, txBytes: 100 * scale, rxPackets: 0, rxBytes: 0 },
    ],
    totals: {
      tun_rx_packets: 11 * scale, tun_rx_bytes: 1100 * scale, udp_tx_packets: 11 * scale, udp_tx_bytes: 1100 * scale,
      udp_rx_packets: 9 * scale, udp_rx_bytes: 900 * scale, tun_tx_packets: 9 * scale, tun_tx_bytes: 900 * scale,
      icmp_sent: scale, tun_read_batches: 4 * scale, udp_recv_batches: 5 * scale, keep_warm_turns: 6 * scale,
    },
    drops: { no_route: 2 * scale, spoofed_source: scale },
  };
}

test('exposition parses strictly and carries every family with the right type', async () => {
  const m = createMetrics(() => status(1), { perPeer: true });
  const text = await m.render();
  const f = parsePromText(text);
  const types: Record<string, string> = {
    weft_packets_total: 'counter', weft_bytes_total: 'counter', weft_peer_packets_total: 'counter',
    weft_peer_bytes_total: 'counter', weft_drops_total: 'counter', weft_batches_total: 'counter',
    weft_icmp_sent_total: 'counter', weft_keep_warm_turns_total: 'counter', weft_worker_restarts_total: 'counter', weft_worker_up: 'gauge',
    weft_offload_info: 'gauge', weft_lease_expiration_timestamp_seconds: 'gauge', weft_route_table_size: 'gauge',
    weft_route_table_epoch: 'gauge',
  };
  for (const [name, type] of Object.entries(types)) assert.equal(f.get(name)?.type, type, name);
  assert.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(sampleValue(f, 'weft_packets_total', { direction: 'udp_tx' }), 11);
  assert.equal(sampleValue(f, 'weft_bytes_total', { direction: 'tun_tx' }), 900);
  assert.equal(sampleValue(f, 'weft_peer_packets_total', { peer: '10.244.2.0/24', direction: 'udp_rx' }), 9);
  assert.equal(sampleValue(f, 'weft_peer_bytes_total', { peer: '10.244.3.0/24', direction: 'udp_tx' }), 100);
  assert.equal(sampleValue(f, 'weft_batches_total', { kind: 'tun_read' }), 4);
  assert.equal(sampleValue(f, 'weft_icmp_sent_total'), 1);
  assert.equal(sampleValue(f, 'weft_keep_warm_turns_total'), 6);
  assert.equal(sampleValue(f, 'weft_offload_info', { path: 'batched-per-packet', udp_gso: 'false' }), 1);
  assert.equal(sampleValue(f, 'weft_lease_expiration_timestamp_seconds'), Date.parse('2030-01-01T00:00:00Z') / 1000);
  assert.equal(sampleValue(f, 'weft_route_table_size'), 3);
  assert.equal(sampleValue(f, 'weft_route_table_epoch'), 3);
  assert.equal(sampleValue(f, 'weft_worker_up', { worker: '1' }), 1);
  // every drop reason but 'none' is present, zero when never seen
  const reasons = f.get('weft_drops_total')!.samples.map((s) => s.labels.reason);
  assert.deepEqual(reasons, DROP_REASON_NAMES.slice(1));
  assert.equal(sampleValue(f, 'weft_drops_total', { reason: 'no_route' }), 2);
  assert.equal(sampleValue(f, 'weft_drops_total', { reason: 'bad_checksum' }), 0);
  // the global registry is untouched
  const { register } = await import('prom-client');
  assert.equal((await register.getMetricsAsJSON()).filter((x) => x.name.startsWith('weft_')).length, 0);
});

test('counters move when the source moves; gauges follow; a removed peer disappears', async () => {
  let scale = 1;
  let reads = 0;
  const m = createMetrics(() => { reads++; return status(scale); }, { perPeer: true });
  const a = parsePromText(await m.render());
  assert.equal(reads, 1, 'one status read per scrape');
  scale = 2;
  const b = parsePromText(await m.render());
  assert.equal(reads, 2);
  for (const d of ['tun_rx', 'udp_tx', 'udp_rx', 'tun_tx']) {
    assert.ok(sampleValue(b, 'weft_packets_total', { direction: d })! > sampleValue(a, 'weft_packets_total', { direction: d })!, d);
  }
  assert.equal(sampleValue(b, 'weft_drops_total', { reason: 'spoofed_source' }), 2);
  assert.equal(sampleValue(b, 'weft_worker_restarts_total', { worker: '1' }), 1);
  assert.equal(sampleValue(b, 'weft_worker_up', { worker: '1' }), 0);
  const s = status(3);
  s.peers = s.peers.slice(0, 1);
  s.lease = null;
  const c = parsePromText(await createMetrics(() => s, { perPeer: true }).render());
  assert.equal(c.get('weft_peer_packets_total')!.samples.length, 2);
  assert.equal(c.get('weft_lease_expiration_timestamp_seconds')!.samples.length, 0);
});

test('label values are escaped', async () => {
  const s = status(1);
  s.offloads.path = 'we"ird\\path\n';
  const f = parsePromText(await createMetrics(() => s, { perPeer: true }).render());
  assert.equal(f.get('weft_offload_info')!.samples[0]!.labels.path, 'we"ird\\path\n');
});

test('the strict parser rejects malformed text', () => {
  assert.throws(() => parsePromText('x 1\n'), /without HELP/);
  assert.throws(() => parsePromText('# HELP x h\n# TYPE x counter\nx{a="1} 1\n'), /unterminated/);
  assert.throws(() => parsePromText('# HELP x h\n# TYPE x counter\nx -1\n'), /negative/);
  assert.throws(() => parsePromText('# HELP x h\n# TYPE x gauge\nx abc\n'), /bad value/);
  assert.throws(() => parsePromText('# HELP x h\n# TYPE x gauge\nx 1\nx 2\n'), /duplicate/);
});

test('without --metrics-per-peer no series per peer; the operator\'s gauges and counters and Node\'s process metrics', async () => {
  const f = parsePromText(await createMetrics(() => status(1), { perPeer: false }).render());
  assert.equal(f.get('weft_peer_packets_total'), undefined);
  assert.equal(f.get('weft_peer_bytes_total'), undefined);
  assert.ok([...f.values()].every((fam) => fam.samples.every((x) => x.labels.peer === undefined)), 'no peer label anywhere');
  assert.equal(sampleValue(f, 'weft_peers'), 2);
  assert.equal(sampleValue(f, 'weft_ready'), 1);
  assert.equal(sampleValue(f, 'weft_build_info', { version: '0.1.0', node_version: process.version }), 1);
  assert.equal(sampleValue(f, 'weft_lease_renewals_total', { result: 'ok' }), 2);
  assert.equal(sampleValue(f, 'weft_lease_renewals_total', { result: 'failed' }), 1);
  assert.equal(sampleValue(f, 'weft_lease_store_errors_total', { store: 'etcd' }), 4);
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    assert.ok(f.has(name), `${name} (prom-client's defaults)`);
  }
  // A node's series do not grow with the cluster: 2 peers or 200, the same count.
  const many = status(1);
  many.peers = Array.from({ length: 200 }, (_v, i) => ({ ...status(1).peers[0]!, subnet: `10.245.${i}.0/24` }));
  const g = parsePromText(await createMetrics(() => many, { perPeer: false }).render());
  const count = (m: Map<string, { samples: unknown[] }>) => [...m.values()].reduce((n, fam) => n + fam.samples.length, 0);
  assert.equal(count(g), count(f));
  const r = parsePromText(await createMetrics(() => status(0), { perPeer: false }).render());
  assert.equal(sampleValue(r, 'weft_ready'), 0);
});
