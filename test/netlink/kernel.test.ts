/**
 * The kernel offload against a real kernel, in two namespaces joined by a
 * veth underlay (192.168.100.1 ↔ .2): the device as flanneld creates it,
 * reuse and replacement, the /32 address, per-peer entries, DirectRouting,
 * the reconcile from a dirty state, deletion detection, the Mode auto probe.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Testbed, twoHosts, type Host } from '../../src/testbed/index.js';
import {
  addPeer, canCreateVxlan, ensureVxlanDevice, parseMac, removePeer, setDeviceAddress, syncPeers, watchDevice,
  WEFT_ROUTE_PROTO, type PeerLink, type VxlanDeviceOptions, type VxlanPeer,
} from '../../src/netlink/index.js';
import { parseIpv4, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';
import { rootSkip } from '../helpers/root.js';
import { captureLog } from '../helpers/log.js';

type Obj = Record<string, unknown>;

describe('netlink: kernel VXLAN offload in a namespace', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`wn${process.pid % 10000}`);
  let h1: Host;
  let h2: Host;
  const logs: string[] = [];
  const MAC = parseMac('c6:d2:32:6f:8f:44');
  let dev: VxlanDeviceOptions;
  let link: PeerLink;
  // Peer 2 sits behind a gateway (VXLAN entries); peer 3's PublicIP is on
  // our segment (DirectRouting gives it a plain route).
  const p2: VxlanPeer = { subnet: parseIpv4Prefix('10.244.2.0/24'), publicIp: parseIpv4('10.99.0.2'), vtepMac: parseMac('02:aa:00:00:00:02') };
  const p3: VxlanPeer = { subnet: parseIpv4Prefix('10.244.3.0/24'), publicIp: parseIpv4('192.168.100.2'), vtepMac: parseMac('02:aa:00:00:00:03') };

  const json = async (ns: string, tool: string, args: string[]): Promise<Obj[]> => {
    const r = await tb.run(null, [tool, '-n', ns, '-j', ...args]);
    return r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as Obj[]);
  };
  const linkInfo = async (ns: string, name: string): Promise<Obj> => (await json(ns, 'ip', ['-d', 'link', 'show', 'dev', name]))[0]!;
  const infoData = (l: Obj): Obj => (l.linkinfo as Obj).info_data as Obj;
  const neigh = (ns: string) => json(ns, 'ip', ['-4', 'neigh', 'show', 'dev', 'flannel.1']);
  const fdb = (ns: string) => json(ns, 'bridge', ['fdb', 'show', 'dev', 'flannel.1']);
  const devRoutes = (ns: string) => json(ns, 'ip', ['-4', 'route', 'show', 'dev', 'flannel.1']);
  const protoRoutes = (ns: string) => json(ns, 'ip', ['-4', 'route', 'show', 'proto', String(WEFT_ROUTE_PROTO)]);

  before(async () => {
    ({ hosts: [h1, h2] } = await twoHosts(tb));
    await tb.route(h1.ns, ['add', '10.99.0.0/16', 'via', h2.underlayIp]);
    dev = { vni: 1, localAddr: parseIpv4(h1.underlayIp), underlayDev: 'eth0', port: 8472, mtu: 1450, mac: MAC, learning: false, gbp: false,
      netns: h1.ns, log: captureLog(logs) };
    link = { dev: 'flannel.1', directRouting: true, netns: h1.ns, log: captureLog(logs) };
  });
  after(() => tb.cleanup());

  test('canCreateVxlan: true here, and leaves no probe device behind', async () => {
    assert.equal(await canCreateVxlan(h1.ns), true);
    const links = await json(h1.ns, 'ip', ['link', 'show']);
    assert.deepEqual(links.map((l) => l.ifname).filter((n) => String(n).startsWith('wxprobe')), []);
  });

  test('ensureVxlanDevice creates flannel.1 exactly as flanneld (ip -d -j link), on 8472 and 4789', async () => {
    const r = await ensureVxlanDevice(dev);
    assert.equal(r.created, true);
    assert.equal(r.replaced, false);
    const l = await linkInfo(h1.ns, 'flannel.1');
    assert.equal(l.ifindex, r.ifindex);
    assert.equal(l.mtu, 1450);
    assert.equal(l.address, 'c6:d2:32:6f:8f:44');
    assert.ok((l.flags as string[]).includes('UP'));
    const d = infoData(l);
    assert.equal((l.linkinfo as Obj).info_kind, 'vxlan');
    assert.equal(d.id, 1);
    assert.equal(d.local, h1.underlayIp);
    assert.equal(d.link, 'eth0');
    assert.equal(d.port, 8472);
    assert.equal(d.learning, false);
    assert.equal(d.gbp, undefined);
    // The same device made by flanneld's equivalent `ip` commands on h2 has
    // the same vxlan attributes, all of them (only local differs).
    await tb.run(null, ['ip', '-n', h2.ns, 'link', 'add', 'flannel.1', 'mtu', '1450', 'type', 'vxlan', 'id', '1', 'local', h2.underlayIp,
      'dev', 'eth0', 'dstport', '8472', 'nolearning']);
    const ref = infoData(await linkInfo(h2.ns, 'flannel.1'));
    assert.deepEqual({ ...d, local: null }, { ...ref, local: null });
    await tb.run(null, ['ip', '-n', h2.ns, 'link', 'del', 'flannel.1']);

    // IANA port, on another VNI (its own device name).
    const r4789 = await ensureVxlanDevice({ ...dev, vni: 4096, port: 4789, gbp: true });
    const d2 = infoData(await linkInfo(h1.ns, 'flannel.4096'));
    assert.equal(r4789.created, true);
    assert.equal(d2.id, 4096);
    assert.equal(d2.port, 4789);
    assert.equal(d2.gbp, true);
    await tb.run(null, ['ip', '-n', h1.ns, 'link', 'del', 'flannel.4096']);
  });

  test('reuse a compatible device (ifindex kept, MTU and MAC set); replace when VNI or port differs', async () => {
    const first = (await linkInfo(h1.ns, 'flannel.1')).ifindex;
    const mac2 = parseMac('c6:d2:32:6f:8f:45');
    const r = await ensureVxlanDevice({ ...dev, mtu: 1400, mac: mac2 });
    assert.deepEqual(r, { created: false, replaced: false, ifindex: first });
    const l = await linkInfo(h1.ns, 'flannel.1');
    assert.equal(l.mtu, 1400);
    assert.equal(l.address, 'c6:d2:32:6f:8f:45');

    logs.length = 0;
    const vni = await ensureVxlanDevice({ ...dev, name: 'flannel.1', vni: 2 });
    assert.equal(vni.replaced, true);
    assert.notEqual(vni.ifindex, first);
    assert.equal(infoData(await linkInfo(h1.ns, 'flannel.1')).id, 2);
    assert.match(logs.join('\n'), /incompatible configuration: vni: 1 vs 2; recreating/);

    const port = await ensureVxlanDevice({ ...dev, name: 'flannel.1', vni: 2, port: 4789 });
    assert.equal(port.replaced, true);
    assert.equal(infoData(await linkInfo(h1.ns, 'flannel.1')).port, 4789);
    assert.match(logs.join('\n'), /port: 8472 vs 4789/);

    const back = await ensureVxlanDevice(dev);
    assert.equal(back.replaced, true);
    const d = infoData(await linkInfo(h1.ns, 'flannel.1'));
    assert.equal(d.id, 1);
    assert.equal(d.port, 8472);
  });

  test('setDeviceAddress: lease network address /32, other IPv4 addresses removed', async () => {
    await tb.addr(h1.ns, 'flannel.1', '10.9.9.9/24');
    await setDeviceAddress('flannel.1', parseIpv4Prefix('10.244.1.0/24'), h1.ns);
    await setDeviceAddress('flannel.1', parseIpv4Prefix('10.244.1.0/24'), h1.ns); // idempotent
    const a = await json(h1.ns, 'ip', ['-4', 'addr', 'show', 'dev', 'flannel.1']);
    const addrs = (a[0]!.addr_info as Obj[]).map((x) => `${String(x.local)}/${String(x.prefixlen)}`);
    assert.deepEqual(addrs, ['10.244.1.0/32']);
  });

  test('addPeer/removePeer: exactly the neighbour, FDB entry and onlink route, then nothing', async () => {
    await addPeer(link, p2);
    assert.deepEqual(await neigh(h1.ns), [{ dst: '10.244.2.0', lladdr: '02:aa:00:00:00:02', state: ['PERMANENT'] }]);
    assert.deepEqual(await fdb(h1.ns), [{ mac: '02:aa:00:00:00:02', dst: '10.99.0.2', flags: ['self'], state: 'permanent' }]);
    assert.deepEqual(await devRoutes(h1.ns), [{ dst: '10.244.2.0/24', gateway: '10.244.2.0', flags: ['onlink'] }]);
    assert.deepEqual(await protoRoutes(h1.ns), []);
    await addPeer(link, p2); // replace: idempotent
    assert.equal((await fdb(h1.ns)).length, 1);
    assert.equal(await removePeer(link, p2), 3);
    assert.deepEqual(await neigh(h1.ns), []);
    assert.deepEqual(await fdb(h1.ns), []);
    assert.deepEqual(await devRoutes(h1.ns), []);
    assert.equal(await removePeer(link, p2), 0);
  });

  test('DirectRouting: a peer on our segment gets a plain route via its PublicIP, and only that', async () => {
    await addPeer(link, p3);
    assert.deepEqual(await protoRoutes(h1.ns), [{ dst: '10.244.3.0/24', gateway: '192.168.100.2', dev: 'eth0', flags: [] }]);
    assert.deepEqual(await neigh(h1.ns), []);
    assert.deepEqual(await fdb(h1.ns), []);
    assert.deepEqual(await devRoutes(h1.ns), []);
    // Without DirectRouting the same peer goes through the VXLAN device.
    await addPeer({ ...link, directRouting: false }, { ...p3, subnet: parseIpv4Prefix('10.244.4.0/24') });
    assert.deepEqual(await devRoutes(h1.ns), [{ dst: '10.244.4.0/24', gateway: '10.244.4.0', flags: ['onlink'] }]);
    assert.equal(await removePeer(link, p3), 1);
    assert.equal(await removePeer(link, { ...p3, subnet: parseIpv4Prefix('10.244.4.0/24') }), 3);
    assert.deepEqual(await protoRoutes(h1.ns), []);
    assert.deepEqual(await devRoutes(h1.ns), []);
  });

  test('syncPeers converges from a dirty state and is then a no-op', async () => {
    const ns = h1.ns;
    // Stale: a neighbour, FDB entry and onlink route of a gone peer, a direct
    // route of a gone peer, and a wrong MAC for a live one.
    await tb.run(null, ['ip', '-n', ns, 'neigh', 'replace', '10.244.9.0', 'lladdr', '02:aa:00:00:00:09', 'dev', 'flannel.1', 'nud', 'permanent']);
    await tb.run(null, ['bridge', '-n', ns, 'fdb', 'append', '02:aa:00:00:00:09', 'dev', 'flannel.1', 'dst', '10.99.0.9', 'self', 'permanent']);
    await tb.run(null, ['ip', '-n', ns, 'route', 'add', '10.244.9.0/24', 'via', '10.244.9.0', 'dev', 'flannel.1', 'onlink']);
    await tb.run(null, ['ip', '-n', ns, 'route', 'add', '10.244.8.0/24', 'via', '192.168.100.8', 'dev', 'eth0', 'proto', String(WEFT_ROUTE_PROTO)]);
    await tb.run(null, ['ip', '-n', ns, 'neigh', 'replace', '10.244.2.0', 'lladdr', '02:aa:00:00:00:77', 'dev', 'flannel.1', 'nud', 'permanent']);
    // Not ours: an administrator's route on the underlay stays.
    await tb.run(null, ['ip', '-n', ns, 'route', 'add', '10.244.7.0/24', 'via', '192.168.100.7', 'dev', 'eth0']);

    const r = await syncPeers(link, [p2, p3]);
    assert.ok(r.removed >= 4 && r.added >= 3, JSON.stringify(r));
    assert.deepEqual(await neigh(ns), [{ dst: '10.244.2.0', lladdr: '02:aa:00:00:00:02', state: ['PERMANENT'] }]);
    assert.deepEqual(await fdb(ns), [{ mac: '02:aa:00:00:00:02', dst: '10.99.0.2', flags: ['self'], state: 'permanent' }]);
    assert.deepEqual(await devRoutes(ns), [{ dst: '10.244.2.0/24', gateway: '10.244.2.0', flags: ['onlink'] }]);
    assert.deepEqual(await protoRoutes(ns), [{ dst: '10.244.3.0/24', gateway: '192.168.100.2', dev: 'eth0', flags: [] }]);
    const admin = await json(ns, 'ip', ['-4', 'route', 'show', '10.244.7.0/24']);
    assert.equal(admin.length, 1);
    assert.deepEqual(await syncPeers(link, [p2, p3]), { added: 0, removed: 0 });
    assert.deepEqual(await syncPeers(link, []), { added: 0, removed: 4 });
    assert.deepEqual(await neigh(ns), []);
    assert.deepEqual(await protoRoutes(ns), []);
  });

  test('watchDevice fires within 1.5 s of `ip link del`, once', async () => {
    let fired = 0;
    let resolveGone: () => void = () => {};
    const gone = new Promise<void>((res) => { resolveGone = res; });
    const w = watchDevice('flannel.1', () => { fired++; resolveGone(); }, { netns: h1.ns });
    try {
      await new Promise((res) => setTimeout(res, 300));
      assert.equal(fired, 0);
      const t0 = Date.now();
      await tb.run(null, ['ip', '-n', h1.ns, 'link', 'del', 'flannel.1']);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error('watchDevice did not fire within 1.5 s')), 1500); });
      await Promise.race([gone, timeout]).finally(() => clearTimeout(timer));
      assert.ok(Date.now() - t0 <= 1500);
      // Recreated by the caller: the stopped watch does not fire again.
      await ensureVxlanDevice(dev);
      await new Promise((res) => setTimeout(res, 1200));
      assert.equal(fired, 1);
    } finally {
      w.stop();
    }
  });
});
