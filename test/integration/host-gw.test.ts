/**
 * The host-gw backend through the daemon, in namespaces (local lease store):
 * - two weft nodes: each adds exactly the route flanneld adds (compared
 *   with one made by `ip route add`), publishes flannel's lease bytes,
 *   writes the underlay MTU, creates no device; ping and a SHA-256-checked
 *   TCP transfer both ways; a deleted route is back within the 10 s check
 *   and a route through another gateway is replaced;
 * - a weft node ↔ a node configured by the test as flanneld's host-gw
 *   configures one: the peer's lease removed → route gone, added → route
 *   back; traffic both ways;
 * - three weft nodes on one bridge, and a peer off the segment: logged
 *   with the reason, shown in status and /metrics, retried until the
 *   kernel takes it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testbed, nHosts, twoHosts, waitReachable, type Host, type Pod } from '../../src/testbed/index.js';
import { attachWeftPod, startWeftNode, weftStatus, type WeftNode } from '../../src/testbed/weft-node.js';
import { formatIpv4Prefix, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';
import { rootSkip } from '../helpers/root.js';
import { leaseKey, removeLeaseFile, writeLeaseFile } from '../helpers/flannel-kernel-node.js';
import { addFlannelHostGwRoute, flannelHostGwLeaseJson, flannelHostGwRouteShape, routesTo } from '../helpers/flannel-host-gw-node.js';
import { httpGet, pingBoth, stopNode, tcpTransfer, within } from '../helpers/traffic.js';

const HOST_GW = '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}\n';
/** The route check runs every 10 s; a route is back at most one period (and its run) after it went. */
const RECOVERY_MS = 12_500;

/** "10.244.7.1/24" (FLANNEL_SUBNET) → "10.244.7.0/24". */
const subnetOf = (n: WeftNode): string => formatIpv4Prefix(parseIpv4Prefix(n.subnet));
const logOf = async (n: WeftNode): Promise<string> => readFile(n.logFile, 'utf8').catch(() => '');
const tail = async (n: WeftNode): Promise<string> => `${n.host.name} log:\n${(await logOf(n)).slice(-2500)}`;

async function linkNames(tb: Testbed, ns: string): Promise<string[]> {
  const r = await tb.run(null, ['ip', '-n', ns, '-j', 'link', 'show']);
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
}

/** The main-table routes to `dst` in `ns`, with the destination blanked. */
async function routeShapes(tb: Testbed, ns: string, dst: string): Promise<Record<string, unknown>[]> {
  return (await routesTo(tb, ns, dst)).map((r) => ({ ...r, dst: '<dst>' }));
}

describe('host-gw: two weft nodes; a weft node ↔ a flanneld-style node', { skip: rootSkip(), timeout: 180_000 }, () => {
  const tb = new Testbed(`hg${process.pid % 10000}`);
  let dir = '';
  let leaseDir = '';
  let hosts: [Host, Host];
  const nodes: WeftNode[] = [];
  const pods: Pod[] = [];
  const linksAtStart: string[][] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-hg-'));
    leaseDir = join(dir, 'leases');
    ({ hosts } = await twoHosts(tb));
    for (const h of hosts) nodes.push(await startWeftNode(tb, h, { dir, netConf: HOST_GW }));
    for (const h of hosts) linksAtStart.push(await linkNames(tb, h.ns));
    for (const n of nodes) pods.push(await attachWeftPod(tb, n));
    assert.ok(await waitReachable(tb, pods[0]!.ns, pods[1]!.ip, 10_000), `pod B reachable from pod A\n${await tail(nodes[0]!)}`);
  });
  after(async () => {
    await tb.cleanup();
    if (dir && !process.env.WEFT_KEEP) await rm(dir, { recursive: true, force: true });
  });

  test('each node: flanneld\'s route, lease bytes and MTU, no device; ping and TCP both ways', async () => {
    for (const [i, n] of nodes.entries()) {
      const peer = nodes[1 - i]!;
      const h = hosts[i]!;
      const want = await flannelHostGwRouteShape(tb, h.ns, peer.host.underlayIp, h.underlayIf);
      assert.deepEqual(await routeShapes(tb, h.ns, subnetOf(peer)), [want], `${h.name}: the route to ${subnetOf(peer)} is flanneld's`);
      assert.equal(await readFile(join(leaseDir, leaseKey(subnetOf(n))), 'utf8'), flannelHostGwLeaseJson(h.underlayIp));
      assert.match(await readFile(n.subnetFile, 'utf8'), /^FLANNEL_MTU=1500$/m, 'FLANNEL_MTU is the underlay MTU');
      assert.deepEqual(linksAtStart[i], ['eth0', 'lo'], `${h.name}: host-gw creates no device`);
    }
    await pingBoth(tb, pods[0]!, pods[1]!, 'weft ↔ weft');
    await tcpTransfer(tb, pods[0]!, pods[1]!, 'weft → weft');
    await tcpTransfer(tb, pods[1]!, pods[0]!, 'weft ← weft');
  });

  test('a deleted route is back within the 10 s check; a route via another gateway is replaced', async (t) => {
    const h = hosts[0];
    const dst = subnetOf(nodes[1]!);
    const want = await flannelHostGwRouteShape(tb, h.ns, hosts[1].underlayIp, h.underlayIf);
    const isOurs = async (): Promise<boolean> => JSON.stringify(await routeShapes(tb, h.ns, dst)) === JSON.stringify([want]);
    const explain = async (): Promise<string> => `routes to ${dst}: ${JSON.stringify(await routesTo(tb, h.ns, dst))}\n${await tail(nodes[0]!)}`;

    await tb.run(null, ['ip', '-n', h.ns, 'route', 'del', dst, 'via', hosts[1].underlayIp, 'dev', h.underlayIf]);
    const back = await within(RECOVERY_MS, isOurs, explain);
    t.diagnostic(`deleted route back after ${back} ms`);
    assert.match(await logOf(nodes[0]!), new RegExp(`route ${dst.replace(/\./g, '\\.')} via \\S+ dev eth0 was missing; recovered`));

    await tb.run(null, ['ip', '-n', h.ns, 'route', 'replace', dst, 'via', '192.168.100.77', 'dev', h.underlayIf]);
    const fixed = await within(RECOVERY_MS, isOurs, explain);
    t.diagnostic(`route via another gateway replaced after ${fixed} ms`);
    assert.match(await logOf(nodes[0]!), /replacing the route to \S+ \(via 192\.168\.100\.77 dev eth0\)/);
    await pingBoth(tb, pods[0]!, pods[1]!, 'after recovery');
  });

  test('weft ↔ a flanneld-style host-gw node: lease removed → route gone, added → back; ping and TCP both ways', async () => {
    const [a, b] = hosts;
    const weftA = nodes[0]!;
    const bSubnet = subnetOf(nodes[1]!);
    const aSubnet = subnetOf(weftA);
    await stopNode(nodes[1]!);
    // flanneld leaves its routes when it stops; so does weft.
    assert.equal((await routesTo(tb, b.ns, aSubnet)).length, 1, 'h2 keeps its route after weft stopped');

    // The peer's lease goes: its route goes with it.
    await removeLeaseFile(leaseDir, bSubnet);
    await within(5_000, async () => (await routesTo(tb, a.ns, bSubnet)).length === 0,
      async () => `routes to ${bSubnet} on h1: ${JSON.stringify(await routesTo(tb, a.ns, bSubnet))}\n${await tail(weftA)}`);

    // h2 becomes a flanneld host-gw node: its route by ip, its lease in flannel's bytes.
    await tb.run(null, ['ip', '-n', b.ns, 'route', 'del', aSubnet, 'via', a.underlayIp, 'dev', b.underlayIf]);
    await addFlannelHostGwRoute(tb, b.ns, aSubnet, a.underlayIp, b.underlayIf);
    await writeLeaseFile(leaseDir, bSubnet, flannelHostGwLeaseJson(b.underlayIp));
    const want = await flannelHostGwRouteShape(tb, a.ns, b.underlayIp, a.underlayIf);
    await within(5_000, async () => JSON.stringify(await routeShapes(tb, a.ns, bSubnet)) === JSON.stringify([want]),
      async () => `routes to ${bSubnet} on h1: ${JSON.stringify(await routesTo(tb, a.ns, bSubnet))}\n${await tail(weftA)}`);
    const noGw = (rs: Record<string, unknown>[]): Record<string, unknown>[] => rs.map((r) => ({ ...r, gateway: '<gw>' }));
    assert.deepEqual(noGw(await routeShapes(tb, b.ns, aSubnet)), noGw(await routeShapes(tb, a.ns, bSubnet)), 'both nodes\' routes read alike');

    await pingBoth(tb, pods[0]!, pods[1]!, 'weft ↔ flanneld-style');
    await tcpTransfer(tb, pods[0]!, pods[1]!, 'weft → flanneld-style');
    await tcpTransfer(tb, pods[1]!, pods[0]!, 'flanneld-style → weft');
  });
});

describe('host-gw: three nodes on one segment, and a peer off it', { skip: rootSkip(), timeout: 180_000 }, () => {
  const tb = new Testbed(`hg3${process.pid % 10000}`);
  const HEALTHZ_PORT = 8081;
  let dir = '';
  let leaseDir = '';
  let hosts: Host[] = [];
  const nodes: WeftNode[] = [];
  const pods: Pod[] = [];
  const OFF = { subnet: '10.244.201.0/24', publicIp: '192.168.77.9' };

  const metric = async (name: string): Promise<string> => {
    const r = await httpGet(tb, hosts[0]!.ns, `http://127.0.0.1:${HEALTHZ_PORT}/metrics`);
    assert.equal(r.status, 200, r.body);
    return r.body.split('\n').filter((l) => l.startsWith(name)).join('\n');
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-hg3-'));
    leaseDir = join(dir, 'leases');
    ({ hosts } = await nHosts(tb, 3));
    for (const [i, h] of hosts.entries()) {
      const extra = i === 0 ? [`--healthz-port=${HEALTHZ_PORT}`, '--healthz-ip=127.0.0.1'] : [];
      nodes.push(await startWeftNode(tb, h, { dir, netConf: HOST_GW, extraArgs: extra }));
    }
    for (const n of nodes) pods.push(await attachWeftPod(tb, n));
  });
  after(async () => {
    await tb.cleanup();
    if (dir && !process.env.WEFT_KEEP) await rm(dir, { recursive: true, force: true });
  });

  test('every pod reaches every other pod', async () => {
    for (const n of nodes) {
      await within(5_000, async () => (await weftStatus(tb, n) as { peers: unknown[] }).peers.length === 2,
        async () => `${n.host.name} status: ${JSON.stringify(await weftStatus(tb, n))}`);
    }
    for (let i = 0; i < 3; i++) {
      for (let j = i + 1; j < 3; j++) await pingBoth(tb, pods[i]!, pods[j]!, `h${i + 1} ↔ h${j + 1}`);
    }
  });

  test('a peer off the segment: logged with the reason, in status and /metrics, retried until the kernel takes it', async () => {
    const h1 = nodes[0]!;
    await writeLeaseFile(leaseDir, OFF.subnet, flannelHostGwLeaseJson(OFF.publicIp));
    const seen = async (): Promise<boolean> => (await logOf(h1)).includes(`cannot add the route to peer ${OFF.subnet}`);
    await within(5_000, seen, () => tail(h1));
    const log = await logOf(h1);
    assert.match(log, /host-gw needs every node on one L2 segment/);
    assert.match(log, /use the vxlan backend with "DirectRouting": true/);
    const s = await weftStatus(tb, h1) as { routeFailures: { subnet: string; gateway: string; error: string }[] };
    assert.deepEqual(s.routeFailures.map((f) => [f.subnet, f.gateway]), [[OFF.subnet, OFF.publicIp]]);
    assert.match(await metric('weft_route_failures'), /^weft_route_failures 1$/m);
    // The daemon keeps forwarding for the others.
    assert.equal(h1.proc.exitCode, null, 'still running');
    await pingBoth(tb, pods[0]!, pods[1]!, 'beside the off-segment peer');

    // The segment grows to reach it: the next check adds the route.
    await tb.run(null, ['ip', '-n', hosts[0]!.ns, 'addr', 'add', '192.168.77.1/24', 'dev', hosts[0]!.underlayIf]);
    // The route shows in the kernel a moment before the daemon, whose `ip` has still to return, logs it.
    const added = new RegExp(`route ${OFF.subnet.replace(/\./g, '\\.')} via 192\\.168\\.77\\.9 dev eth0 added after \\d+ failed attempts`);
    await within(RECOVERY_MS, async () => (await routesTo(tb, hosts[0]!.ns, OFF.subnet)).length === 1 && added.test(await logOf(h1)),
      async () => `routes: ${JSON.stringify(await routesTo(tb, hosts[0]!.ns, OFF.subnet))}\n${await tail(h1)}`);
    assert.match(await metric('weft_route_failures'), /^weft_route_failures 0$/m);

    await removeLeaseFile(leaseDir, OFF.subnet);
    await within(5_000, async () => (await routesTo(tb, hosts[0]!.ns, OFF.subnet)).length === 0, () => tail(h1));
  });
});
