import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTop } from '../../src/cli/top.js';
import { formatStatus, type Status } from '../../src/cli/status.js';

function status(tx: number, drops: number): Status {
  return {
    version: '0.1.0', pid: 1, uptimeSeconds: 5, tun: 'flannel0', backend: 'udp', mode: 'udp',
    lease: { subnet: '10.244.1.0/24', expiration: '2026-11-23T00:00:00.000Z' }, publicIp: '192.168.100.1',
    offloads: { path: 'batched-per-packet' }, routeEpoch: 3,
    workers: [{ index: 0, alive: true, restarts: 0, heartbeatAgeMs: 10 }, { index: 1, alive: false, restarts: 2, heartbeatAgeMs: 900 }],
    peers: [{ subnet: '10.244.2.0/24', publicIp: '192.168.100.2', txPackets: tx, txBytes: tx * 1000, rxPackets: 0, rxBytes: 0 }],
    totals: { udp_tx_packets: tx, udp_tx_bytes: tx * 1000, tun_tx_packets: 0, tun_tx_bytes: 0 },
    drops: { no_route: drops, truncated: 0 },
  };
}

test('weft top: rates per peer and per drop reason from two samples', () => {
  const out = renderTop({ at: 2000, s: status(3000, 10) }, { at: 0, s: status(1000, 4) });
  // 2000 packets in 2 s = 1000 pkt/s; 2000 × 1000 B × 8 / 2 s = 8 Mbit/s.
  assert.match(out, /10\.244\.2\.0\/24\s+192\.168\.100\.2\s+1\.0k\s+8\.0M\s+0\s+0/);
  assert.match(out, /no_route\s+10\s+3/);
  assert.doesNotMatch(out, /truncated/, 'reasons with no drops are left out');
  assert.match(out, /#1 DOWN \(2 restarts\)/);
});

test('weft top: first screen has no rates yet, never negative ones', () => {
  const out = renderTop({ at: 0, s: status(10, 0) }, null);
  assert.match(out, /10\.244\.2\.0\/24\s+192\.168\.100\.2\s+0\s+0\s+0\s+0/);
  assert.match(out, /\(no drops\)/);
  const back = renderTop({ at: 1000, s: status(5, 0) }, { at: 0, s: status(10, 0) });
  assert.doesNotMatch(back, /-\d/);
});

test('weft status: the backend, ignored peers and refused host-gw routes are shown', () => {
  const s: Status = {
    ...status(0, 0), backend: 'host-gw', mode: 'host-gw', tun: '',
    ignoredPeers: [{ subnet: '10.244.3.0/24', publicIp: '192.168.100.3', backendType: 'vxlan', why: 'its backend is "vxlan", ours is "host-gw"' }],
    routeFailures: [{ subnet: '10.244.4.0/24', gateway: '10.99.0.4', error: 'Error: Nexthop has invalid gateway.', attempts: 3 }],
  };
  const out = formatStatus(s);
  assert.match(out, /up 5s {2}host-gw {2}lease 10\.244\.1\.0\/24/);
  assert.match(out, /ignored peers:\n {2}10\.244\.3\.0\/24 +at +192\.168\.100\.3 +its backend is "vxlan", ours is "host-gw"/);
  assert.match(out, /route refused: 10\.244\.4\.0\/24 via 10\.99\.0\.4 \(3 attempts\): Error: Nexthop has invalid gateway\./);
  assert.match(formatStatus(status(0, 0)), /up 5s {2}udp on flannel0 {2}lease/);
});
