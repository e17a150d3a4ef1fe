import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Testbed, attachPod, nHosts, ping, twoHosts, iperf3Server, iperf3Client } from '../../src/testbed/index.js';
import { needsRoot } from '../helpers/root.js';

const prefix = (letter: string): string => `wt${process.pid % 1000}${letter}`;

test('twoHosts + attachPod: pods reach each other over host-gw routes; iperf3 moves bytes', async (t) => {
  if (!needsRoot(t)) return;
  const tb = new Testbed(prefix('h'));
  try {
    const { hosts: [a, b] } = await twoHosts(tb, { underlayMtu: 1500 });
    assert.equal(a.underlayIp, '192.168.100.1');
    assert.equal(b.underlayIp, '192.168.100.2');
    assert.equal((await tb.run(a.ns, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), '1');
    const pa = await attachPod(tb, a, { podCidrHost: '10.244.1.2/24', gateway: '10.244.1.1', mtu: 1450 });
    const pb = await attachPod(tb, b, { podCidrHost: '10.244.2.2/24', gateway: '10.244.2.1', mtu: 1450 });
    assert.equal(pa.ns, `${prefix('h')}-h1p0`);
    assert.equal(pa.ip, '10.244.1.2');
    assert.equal(pa.cidr, '10.244.1.0/24');
    const link = await tb.run(null, ['ip', '-n', pa.ns, '-o', 'link', 'show', 'eth0']);
    assert.match(link.stdout, /mtu 1450/);
    await tb.route(a.ns, ['10.244.2.0/24', 'via', b.underlayIp]);
    await tb.route(b.ns, ['10.244.1.0/24', 'via', a.underlayIp]);
    const p = await ping(tb, pa.ns, pb.ip, { count: 3, intervalS: 0.05 });
    assert.equal(p.sent, 3);
    assert.equal(p.received, 3);
    assert.equal(p.rttMs.length, 3);
    // DF and size: 1422 + 28 = 1450 fits, 1423 does not.
    assert.equal((await ping(tb, pa.ns, pb.ip, { count: 1, intervalS: 0.2, size: 1422, df: true })).received, 1);
    assert.equal((await ping(tb, pa.ns, pb.ip, { count: 1, intervalS: 0.2, size: 1423, df: true })).received, 0);
    const srv = await iperf3Server(tb, pb.ns);
    const r = await iperf3Client(tb, pa.ns, pb.ip, { seconds: 1 });
    assert.ok(r.summary.bytes > 0);
    const u = await iperf3Client(tb, pa.ns, pb.ip, { seconds: 1, udp: true, bitrate: '10M', length: 64 });
    assert.ok((u.summary.receivedPackets ?? 0) > 0);
    await srv.stop();
  } finally {
    await tb.cleanup();
  }
  assert.equal(Testbed.sweep(prefix('h')).length, 0, 'cleanup left nothing to sweep');
});

test('nHosts: three hosts on one bridged L2 segment', async (t) => {
  if (!needsRoot(t)) return;
  const tb = new Testbed(prefix('n'));
  try {
    const { hosts, switchNs } = await nHosts(tb, 3, { subnetOctet: 77 });
    assert.equal(switchNs, `${prefix('n')}-sw`);
    assert.deepEqual(hosts.map((h) => h.underlayIp), ['192.168.77.1', '192.168.77.2', '192.168.77.3']);
    const h1 = hosts[0];
    assert.ok(h1);
    for (const dst of ['192.168.77.2', '192.168.77.3']) {
      assert.equal((await ping(tb, h1.ns, dst, { count: 2, intervalS: 0.05 })).received, 2, dst);
    }
  } finally {
    await tb.cleanup();
  }
});
