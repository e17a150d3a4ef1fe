import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GONE, hasProcRoute, tunProblems } from '../../src/control/tun-watch.js';
import { parseIpv4, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';

const ROUTES = [
  'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
  'eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
  'flannel0\t0000F40A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
  'eth0\t0064A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
].join('\n');

test('hasProcRoute: /proc/net/route\'s little-endian hex, on the device, without a gateway', () => {
  assert.equal(hasProcRoute(ROUTES, 'flannel0', parseIpv4Prefix('10.244.0.0/16')), true);
  assert.equal(hasProcRoute(ROUTES, 'flannel0', parseIpv4Prefix('10.244.0.0/24')), false, 'another mask');
  assert.equal(hasProcRoute(ROUTES, 'flannel1', parseIpv4Prefix('10.244.0.0/16')), false, 'another device');
  assert.equal(hasProcRoute(ROUTES, 'eth0', parseIpv4Prefix('192.168.100.0/24')), true);
  assert.equal(hasProcRoute(ROUTES, 'eth0', parseIpv4Prefix('0.0.0.0/0')), false, 'the default route has a gateway');
});

test('tunProblems: a device that is not there is GONE', () => {
  assert.deepEqual(tunProblems({
    name: 'weft-no-such0', ifindex: 1, addr: parseIpv4('10.244.1.0'), network: parseIpv4Prefix('10.244.0.0/16'),
  }), [GONE]);
});
