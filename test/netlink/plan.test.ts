/**
 * The pure parts of the kernel offload: what flanneld would program for a
 * peer, the reconcile diff, device compatibility, iproute2 JSON parsing.
 * No root needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  diffPeers, parseLinkFacts, parseMac, formatMac, parsePeerState, peerEntries, randomVtepMac, vxlanCreateArgs,
  vxlanIncompat, checkDevName, WEFT_ROUTE_PROTO, type VxlanDeviceOptions, type VxlanPeer,
} from '../../src/netlink/index.js';
import { parseIpv4, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';

const MAC_A = parseMac('c6:d2:32:6f:8f:44');
const peer = (n: number, pub = `192.168.100.${n}`, mac = `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`): VxlanPeer => ({
  subnet: parseIpv4Prefix(`10.244.${n}.0/24`), publicIp: parseIpv4(pub), vtepMac: parseMac(mac),
});

test('MAC text round trip, random VTEP MAC is unicast and locally administered', () => {
  assert.equal(formatMac(MAC_A), 'c6:d2:32:6f:8f:44');
  assert.equal(formatMac(parseMac('C6-D2-32-6F-8F-44')), 'c6:d2:32:6f:8f:44');
  assert.throws(() => parseMac('c6:d2:32:6f:8f'), { code: 'EBADMAC' });
  for (let i = 0; i < 50; i++) {
    const m = randomVtepMac();
    assert.equal(m[0]! & 0x03, 0x02);
  }
});

test('interface names that could break -batch text are refused', () => {
  assert.throws(() => checkDevName('flannel.1\nlink del eth0'), { code: 'EBADDEV' });
  assert.throws(() => checkDevName('a b'), { code: 'EBADDEV' });
  assert.throws(() => checkDevName('x'.repeat(16)), { code: 'EBADDEV' });
  checkDevName('flannel.16777215'.slice(0, 15));
});

test('device: ip link add arguments match flanneld (nolearning, dstport 0 → 8472, gbp)', () => {
  const o: VxlanDeviceOptions = { vni: 1, localAddr: parseIpv4('192.168.64.3'), underlayDev: 'eth0', mtu: 1450, mac: MAC_A };
  assert.deepEqual(vxlanCreateArgs(o), ['link', 'add', 'flannel.1', 'mtu', '1450', 'address', 'c6:d2:32:6f:8f:44', 'type', 'vxlan',
    'id', '1', 'local', '192.168.64.3', 'dev', 'eth0', 'dstport', '8472', 'nolearning']);
  assert.deepEqual(vxlanCreateArgs({ ...o, vni: 7, port: 4789, learning: true, gbp: true }).slice(-6),
    ['dev', 'eth0', 'dstport', '4789', 'learning', 'gbp']);
});

test('device: compatibility is VNI, local, port, dev, learning, gbp; type first', () => {
  const facts = parseLinkFacts({
    ifindex: 5, ifname: 'flannel.1', mtu: 1450, address: 'c6:d2:32:6f:8f:44', flags: ['BROADCAST', 'UP'],
    linkinfo: { info_kind: 'vxlan', info_data: { id: 1, local: '192.168.64.3', link: 'eth0', port: 8472, learning: false } },
  });
  assert.equal(facts.up, true);
  const o: VxlanDeviceOptions = { vni: 1, localAddr: parseIpv4('192.168.64.3'), underlayDev: 'eth0', port: 0, mtu: 1400, mac: MAC_A };
  assert.equal(vxlanIncompat(facts, o), '');
  assert.equal(vxlanIncompat(facts, { ...o, vni: 2 }), 'vni: 1 vs 2');
  assert.equal(vxlanIncompat(facts, { ...o, port: 4789 }), 'port: 8472 vs 4789');
  assert.equal(vxlanIncompat(facts, { ...o, underlayDev: 'eth1' }), 'vtep (external) interface: eth0 vs eth1');
  assert.equal(vxlanIncompat(facts, { ...o, localAddr: parseIpv4('192.168.64.4') }), 'vtep (external) IP: 192.168.64.3 vs 192.168.64.4');
  assert.equal(vxlanIncompat(facts, { ...o, learning: true }), 'learning: false vs true');
  assert.equal(vxlanIncompat(facts, { ...o, gbp: true }), 'gbp: false vs true');
  const tun = parseLinkFacts({ ifindex: 6, ifname: 'flannel.1', linkinfo: { info_kind: 'tun' } });
  assert.equal(vxlanIncompat(tun, o), 'link type: tun vs vxlan');
});

test('peer entries: neighbour, FDB and onlink route as flanneld; DirectRouting gives one route', () => {
  const p = peer(2);
  assert.deepEqual(peerEntries('flannel.1', p, null), {
    neigh: { ip: '10.244.2.0', mac: '02:00:00:00:00:02' },
    fdb: { mac: '02:00:00:00:00:02', dst: '192.168.100.2' },
    route: { dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'flannel.1', onlink: true },
  });
  assert.deepEqual(peerEntries('flannel.1', p, 'eth0'), {
    neigh: null, fdb: null, route: { dst: '10.244.2.0/24', via: '192.168.100.2', dev: 'eth0', onlink: false },
  });
});

test('diff from empty: FDB, then neighbour, then route (flannel order), all replaces', () => {
  const ch = diffPeers('flannel.1', [peerEntries('flannel.1', peer(2), null), peerEntries('flannel.1', peer(3), 'eth0')],
    { neigh: [], fdb: [], routes: [] });
  assert.deepEqual(ch.bridge, ['fdb replace 02:00:00:00:00:02 dev flannel.1 dst 192.168.100.2 self permanent']);
  assert.deepEqual(ch.ip, [
    'neigh replace 10.244.2.0 lladdr 02:00:00:00:00:02 dev flannel.1 nud permanent',
    'route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink',
    `route replace 10.244.3.0/24 via 192.168.100.3 dev eth0 proto ${WEFT_ROUTE_PROTO}`,
  ]);
  assert.equal(ch.added, 4);
  assert.equal(ch.removed, 0);
});

test('diff of a converged state is empty; stale entries are deleted, a changed MAC/PublicIP replaced', () => {
  const dev = 'flannel.1';
  const want = [peerEntries(dev, peer(2), null), peerEntries(dev, peer(3), 'eth0')];
  // As iproute2 prints them: `ip -j neigh show dev`, `bridge -j fdb show dev`,
  // `ip -j route show table main dev` (no dev key), `… proto 87` (no protocol key).
  const state = parsePeerState(dev,
    [{ dst: '10.244.2.0', lladdr: '02:00:00:00:00:02', state: ['PERMANENT'] },
      { dst: '10.244.9.0', lladdr: '02:00:00:00:00:09', state: ['PERMANENT'] },
      { dst: '10.244.7.5', lladdr: '02:00:00:00:00:07', state: ['REACHABLE'] }],
    [{ mac: '02:00:00:00:00:02', dst: '192.168.100.2', flags: ['self'], state: 'permanent' },
      { mac: '02:00:00:00:00:09', dst: '192.168.100.9', flags: ['self'], state: 'permanent' },
      { mac: '4e:00:00:00:00:01', flags: ['self'], state: 'permanent' }],
    [{ dst: '10.244.2.0/24', gateway: '10.244.2.0', flags: ['onlink'] },
      { dst: '10.244.9.0/24', gateway: '10.244.9.0', flags: ['onlink'] },
      { dst: '10.244.0.0/16', protocol: 'kernel', scope: 'link', flags: [] }],
    [{ dst: '10.244.3.0/24', gateway: '192.168.100.3', dev: 'eth0', flags: [] },
      { dst: '10.244.8.0/24', gateway: '192.168.100.8', dev: 'eth0', metric: 5, flags: [] }]);
  const ch = diffPeers(dev, want, state);
  assert.deepEqual(ch.bridge, ['fdb del 02:00:00:00:00:09 dev flannel.1 dst 192.168.100.9 self']);
  assert.deepEqual(ch.ip, [
    'route del 10.244.9.0/24 dev flannel.1 table main metric 0',
    `route del 10.244.8.0/24 dev eth0 table main metric 5 proto ${WEFT_ROUTE_PROTO}`,
    'neigh del 10.244.9.0 dev flannel.1',
  ]);
  assert.equal(ch.added, 0);
  assert.equal(ch.removed, 4);

  const converged = diffPeers(dev, want.slice(0, 1), parsePeerState(dev,
    [{ dst: '10.244.2.0', lladdr: '02:00:00:00:00:02', state: ['PERMANENT'] }],
    [{ mac: '02:00:00:00:00:02', dst: '192.168.100.2', flags: ['self'], state: 'permanent' }],
    [{ dst: '10.244.2.0/24', gateway: '10.244.2.0', flags: ['onlink'] }], []));
  assert.deepEqual(converged, { bridge: [], ip: [], added: 0, removed: 0 });

  // Peer 2 moved to a new PublicIP and MAC: the old FDB remote goes, the
  // neighbour is replaced in place, the route (unchanged) stays.
  const moved = diffPeers(dev, [peerEntries(dev, peer(2, '192.168.100.20', '02:00:00:00:00:20'), null)], parsePeerState(dev,
    [{ dst: '10.244.2.0', lladdr: '02:00:00:00:00:02', state: ['PERMANENT'] }],
    [{ mac: '02:00:00:00:00:02', dst: '192.168.100.2', flags: ['self'], state: 'permanent' }],
    [{ dst: '10.244.2.0/24', gateway: '10.244.2.0', flags: ['onlink'] }], []));
  assert.deepEqual(moved.bridge, [
    'fdb del 02:00:00:00:00:02 dev flannel.1 dst 192.168.100.2 self',
    'fdb replace 02:00:00:00:00:20 dev flannel.1 dst 192.168.100.20 self permanent',
  ]);
  assert.deepEqual(moved.ip, ['neigh replace 10.244.2.0 lladdr 02:00:00:00:00:20 dev flannel.1 nud permanent']);
});

test('diff: a peer switching to DirectRouting has its VXLAN route replaced in place, neighbour/FDB removed', () => {
  const dev = 'flannel.1';
  const st = parsePeerState(dev,
    [{ dst: '10.244.2.0', lladdr: '02:00:00:00:00:02', state: ['PERMANENT'] }],
    [{ mac: '02:00:00:00:00:02', dst: '192.168.100.2', flags: ['self'], state: 'permanent' }],
    [{ dst: '10.244.2.0/24', gateway: '10.244.2.0', flags: ['onlink'] }], []);
  const ch = diffPeers(dev, [peerEntries(dev, peer(2), 'eth0')], st);
  assert.deepEqual(ch.bridge, ['fdb del 02:00:00:00:00:02 dev flannel.1 dst 192.168.100.2 self']);
  assert.deepEqual(ch.ip, ['neigh del 10.244.2.0 dev flannel.1', `route replace 10.244.2.0/24 via 192.168.100.2 dev eth0 proto ${WEFT_ROUTE_PROTO}`]);
});
