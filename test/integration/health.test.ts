/**
 * --healthz-ip/--healthz-port on two weft daemons: /healthz, /readyz once
 * subnet.env exists, /metrics parses as Prometheus text, its udp_tx counter
 * grows with a pod→pod ping, and every drop reason is exported.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { ping } from '../../src/testbed/index.js';
import { DROP_REASON_NAMES } from '../../src/wire/drop-reason.js';
import { parsePromText, sampleValue } from '../control/prom-text.js';
import { rootSkip } from '../helpers/root.js';
import { WeftPair } from '../helpers/weft-pair.js';

const HEALTHZ_PORT = 10_256;

interface Reply { status: number; type: string | null; body: string }

describe('health and metrics endpoints of a running daemon', { skip: rootSkip(), timeout: 120_000 }, () => {
  const pair = new WeftPair('wh', (h) => ['--workers=1', '--metrics-per-peer', `--healthz-port=${HEALTHZ_PORT}`, `--healthz-ip=${h.underlayIp}`]);
  const { tb, nodes } = pair;

  before(() => pair.start());

  after(() => pair.stop());

  /** GET inside the node's namespace (the server listens on its underlay address there). */
  const get = async (i: number, path: string): Promise<Reply> => {
    const n = nodes[i]!;
    const url = `http://${n.host.underlayIp}:${HEALTHZ_PORT}${path}`;
    const js = `fetch(${JSON.stringify(url)}).then(async r=>{console.log(JSON.stringify({status:r.status,`
      + `type:r.headers.get('content-type'),body:await r.text()}))},e=>{console.log(JSON.stringify({status:0,type:null,body:String(e)}))})`;
    const r = await tb.run(n.host.ns, [process.execPath, '-e', js], { timeoutMs: 10_000 });
    return JSON.parse(r.stdout) as Reply;
  };

  test('/healthz 200 and /readyz 200 once subnet.env exists', async () => {
    for (let i = 0; i < 2; i++) {
      await access(nodes[i]!.subnetFile);
      const h = await get(i, '/healthz');
      assert.equal(h.status, 200, h.body);
      const r = await get(i, '/readyz');
      assert.equal(r.status, 200, r.body);
    }
  });

  test('/metrics parses, udp_tx grows with a pod→pod ping, every drop reason is present', async () => {
    const m1 = await get(0, '/metrics');
    assert.equal(m1.status, 200, m1.body);
    assert.equal(m1.type, 'text/plain; version=0.0.4; charset=utf-8');
    const a = parsePromText(m1.body);
    const before = sampleValue(a, 'weft_packets_total', { direction: 'udp_tx' });
    assert.ok(before !== undefined, 'weft_packets_total{direction="udp_tx"} present');

    const p = await ping(tb, pair.podA.ns, pair.podB.ip, { count: 5, intervalS: 0.05 });
    assert.equal(p.received, 5, p.output);

    const b = parsePromText((await get(0, '/metrics')).body);
    const afterTx = sampleValue(b, 'weft_packets_total', { direction: 'udp_tx' })!;
    assert.ok(afterTx >= before + 5, `udp_tx ${before} → ${afterTx}`);
    assert.ok(sampleValue(b, 'weft_packets_total', { direction: 'tun_tx' })! >= 5);
    const peer = b.get('weft_peer_packets_total')?.samples.find((s) => s.labels.direction === 'udp_tx');
    assert.ok(peer && peer.value >= 5, 'per-peer udp_tx counted');
    const reasons = new Set(b.get('weft_drops_total')?.samples.map((s) => s.labels.reason));
    for (const r of DROP_REASON_NAMES.slice(1)) assert.ok(reasons.has(r), `drop reason ${r} exported`);
    assert.equal(b.get('weft_drops_total')!.type, 'counter');
    assert.ok(b.get('weft_lease_expiration_timestamp_seconds')!.samples[0]!.value * 1000 > Date.now());
    assert.equal(sampleValue(b, 'weft_route_table_size'), 1, 'one peer route');
    assert.equal(sampleValue(b, 'weft_worker_up', { worker: '0' }), 1);
    const kernel = new Set(b.get('weft_kernel_drops_total')?.samples.map((s) => s.labels.where));
    assert.deepEqual([...kernel].sort(), ['tun_queue', 'udp_socket'], 'kernel-side drops exported');
  });
});
