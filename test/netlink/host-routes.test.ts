import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseMainRoutes, planHostRoutes, routeAddLine, routeDelLine, type HostRoute, type MainRoute,
} from '../../src/netlink/host-routes.js';
import { parseBatchFailures } from '../../src/netlink/iproute.js';
import { parseIpv4, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';

// `ip -j route show table main` (iproute2 6.1) in a namespace holding a
// host-gw route, one through another device with a metric, a blackhole,
// a host route and the two connected networks.
const CAPTURED = [
  { dst: '10.244.2.0/24', gateway: '192.168.9.2', dev: 'v0', flags: [] },
  { dst: '10.244.3.0/24', gateway: '192.168.8.7', dev: 'v1', metric: 100, flags: [] },
  { type: 'blackhole', dst: '10.244.4.0/24', flags: [] },
  { dst: '10.244.5.5', gateway: '192.168.9.9', dev: 'v0', protocol: '87', flags: [] },
  { dst: '192.168.8.0/24', dev: 'v1', protocol: 'kernel', scope: 'link', prefsrc: '192.168.8.1', flags: [] },
  { dst: '192.168.9.0/24', dev: 'v0', protocol: 'kernel', scope: 'link', prefsrc: '192.168.9.1', flags: [] },
];

const have = parseMainRoutes(CAPTURED);
const want = (dst: string, gw: string): HostRoute => ({ dst: parseIpv4Prefix(dst), gw: parseIpv4(gw) });

test('parseMainRoutes: type, gateway, device and metric as iproute2 prints them; host routes get /32', () => {
  assert.deepEqual(have.slice(0, 4), [
    { type: 'unicast', dst: '10.244.2.0/24', gateway: '192.168.9.2', dev: 'v0', metric: 0 },
    { type: 'unicast', dst: '10.244.3.0/24', gateway: '192.168.8.7', dev: 'v1', metric: 100 },
    { type: 'blackhole', dst: '10.244.4.0/24', gateway: null, dev: null, metric: 0 },
    { type: 'unicast', dst: '10.244.5.5/32', gateway: '192.168.9.9', dev: 'v0', metric: 0 },
  ]);
  assert.equal(have.length, 6);
  assert.deepEqual(parseMainRoutes([null, 7, { gateway: 'x' }]), [], 'entries without dst are skipped');
});

test('planHostRoutes: a route already as flanneld programs it is left alone', () => {
  assert.deepEqual(planHostRoutes('v0', [want('10.244.2.0/24', '192.168.9.2')], have), { del: [], add: [] });
});

test('planHostRoutes: a missing route is added; unrelated routes are never touched', () => {
  const plan = planHostRoutes('v0', [want('10.244.9.0/24', '192.168.9.3')], have);
  assert.deepEqual(plan, { del: [], add: [want('10.244.9.0/24', '192.168.9.3')] });
  assert.deepEqual(planHostRoutes('v0', [], have), { del: [], add: [] });
});

test('planHostRoutes: a route to the same subnet via another gateway, device or type is replaced', () => {
  const byDst = (d: string): MainRoute => have.find((r) => r.dst === d)!;
  // Another gateway on our device.
  assert.deepEqual(planHostRoutes('v0', [want('10.244.2.0/24', '192.168.9.5')], have),
    { del: [byDst('10.244.2.0/24')], add: [want('10.244.2.0/24', '192.168.9.5')] });
  // Another device (with a metric): deleted with that metric, ours added.
  assert.deepEqual(planHostRoutes('v0', [want('10.244.3.0/24', '192.168.9.7')], have),
    { del: [byDst('10.244.3.0/24')], add: [want('10.244.3.0/24', '192.168.9.7')] });
  // A blackhole in the way.
  assert.deepEqual(planHostRoutes('v0', [want('10.244.4.0/24', '192.168.9.4')], have),
    { del: [byDst('10.244.4.0/24')], add: [want('10.244.4.0/24', '192.168.9.4')] });
});

test('planHostRoutes: ours at some metric is kept (flannel compares destination, gateway and device only); others to that subnet go', () => {
  const two = parseMainRoutes([
    { dst: '10.244.2.0/24', gateway: '192.168.9.8', dev: 'v0', flags: [] },
    { dst: '10.244.2.0/24', gateway: '192.168.9.2', dev: 'v0', metric: 50, flags: [] },
  ]);
  assert.deepEqual(planHostRoutes('v0', [want('10.244.2.0/24', '192.168.9.2')], two), { del: [two[0]], add: [] });
});

test('route lines: what is added is `ip route add`\'s route; deletes name type, gateway, device and metric', () => {
  assert.equal(routeAddLine('eth0', want('10.244.2.0/24', '192.168.100.2')), 'route replace 10.244.2.0/24 via 192.168.100.2 dev eth0');
  assert.deepEqual(have.map(routeDelLine).slice(0, 3), [
    'route del 10.244.2.0/24 via 192.168.9.2 dev v0 table main metric 0',
    'route del 10.244.3.0/24 via 192.168.8.7 dev v1 table main metric 100',
    'route del blackhole 10.244.4.0/24 table main metric 0',
  ]);
});

test('parseBatchFailures: each failed -batch line with what iproute2 said of it', () => {
  // `ip -force -batch -` stderr, captured with line 2 off-segment and line 3 a duplicate.
  const stderr = 'Error: Nexthop has invalid gateway.\nCommand failed -:2\nRTNETLINK answers: File exists\nCommand failed -:3\n';
  assert.deepEqual([...parseBatchFailures(stderr)], [[2, 'Error: Nexthop has invalid gateway.'], [3, 'RTNETLINK answers: File exists']]);
  assert.equal(parseBatchFailures('').size, 0);
});
