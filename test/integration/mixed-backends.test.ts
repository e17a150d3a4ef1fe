/**
 * Backends side by side and bad input, through the daemon in namespaces
 * (local lease store):
 * - a host-gw node and a udp node in one cluster: each ignores the other
 *   with one warning, lists it in status, counts it in /metrics, routes
 *   nothing to it;
 * - two alloc nodes: a lease each in flannel's bytes, subnet.env with the
 *   underlay MTU, nothing programmed, the lease kept after exit;
 * - wrong net-conf for host-gw and alloc, and host-gw behind NAT: start-up
 *   refused with the message, the host exactly as it was;
 * - --ip-blackhole-route: the route, and put back when deleted;
 * - peer leases weft cannot use (not a flannel lease; vxlan without a
 *   VtepMAC): skipped with a warning naming them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testbed, twoHosts, type Host } from '../../src/testbed/index.js';
import { startWeftNode, weftStatus, WEFT_BIN, type WeftNode } from '../../src/testbed/weft-node.js';
import { formatIpv4Prefix, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';
import { rootSkip } from '../helpers/root.js';
import { leaseKey, writeLeaseFile } from '../helpers/flannel-kernel-node.js';
import { routesTo } from '../helpers/flannel-host-gw-node.js';
import { httpGet, sleep, stopNode, within } from '../helpers/traffic.js';
import { hostState, type HostState } from '../helpers/host-state.js';

const subnetOf = (n: WeftNode): string => formatIpv4Prefix(parseIpv4Prefix(n.subnet));
const logOf = async (n: WeftNode): Promise<string> => readFile(n.logFile, 'utf8').catch(() => '');
const tail = async (n: WeftNode): Promise<string> => `${n.host.name} log:\n${(await logOf(n)).slice(-2500)}`;
const count = (text: string, needle: string): number => text.split(needle).length - 1;

interface Refused { code: number; stderr: string }

/** Runs the daemon in `host`'s namespace with `netConf` and expects it to exit. */
async function startRefused(tb: Testbed, host: Host, dir: string, netConf: string, extra: string[] = []): Promise<Refused> {
  const conf = join(dir, `${host.name}.bad-net-conf.json`);
  await writeFile(conf, netConf);
  const r = await tb.exec(host.ns, [process.execPath, WEFT_BIN, `--iface=${host.underlayIf}`, `--net-config-path=${conf}`,
    `--subnet-file=${join(dir, 'bad.subnet.env')}`, `--lease-dir=${join(dir, 'bad-leases')}`,
    `--control-socket=${join(dir, 'bad.sock')}`, '--ip-masq', ...extra], { timeoutMs: 20_000 });
  return { code: r.code, stderr: r.stderr };
}

describe('host-gw and udp in one cluster: each ignores the other', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`mx${process.pid % 10000}`);
  const HEALTHZ_PORT = 8081;
  let dir = '';
  let leaseDir = '';
  let hosts: [Host, Host];
  const nodes: WeftNode[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-mx-'));
    leaseDir = join(dir, 'leases');
    ({ hosts } = await twoHosts(tb));
    nodes.push(await startWeftNode(tb, hosts[0], {
      dir, netConf: '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}',
      extraArgs: [`--healthz-port=${HEALTHZ_PORT}`, '--healthz-ip=127.0.0.1'],
    }));
    nodes.push(await startWeftNode(tb, hosts[1], { dir, netConf: '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}' }));
  });
  after(async () => {
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('one warning each, in status and /metrics, no route; a changed lease of the same kind warns no more', async () => {
    const [hg, udp] = nodes as [WeftNode, WeftNode];
    const hgWarn = `ignoring non-host-gw subnet ${subnetOf(udp)} at 192.168.100.2: its backend is udp or alloc (no BackendType), ours is "host-gw"`;
    const udpWarn = `ignoring non-udp subnet ${subnetOf(hg)} at 192.168.100.1: its backend is "host-gw", ours is "udp"`;
    await within(5_000, async () => (await logOf(hg)).includes(hgWarn), () => tail(hg));
    await within(5_000, async () => (await logOf(udp)).includes(udpWarn), () => tail(udp));
    assert.match(await logOf(hg), /^W\d{4} [\d:.]+ +\d+ daemon\.ts:\d+\] ignoring non-host-gw subnet/m, 'a klog warning line');

    type S = { peers: unknown[]; ignoredPeers: { subnet: string; backendType: string; mismatch: boolean }[] };
    const sh = await weftStatus(tb, hg) as S;
    const su = await weftStatus(tb, udp) as S;
    assert.deepEqual(sh.peers, []);
    assert.deepEqual(sh.ignoredPeers.map((p) => [p.subnet, p.backendType, p.mismatch]), [[subnetOf(udp), '', true]]);
    assert.deepEqual(su.peers, []);
    assert.deepEqual(su.ignoredPeers.map((p) => [p.subnet, p.backendType, p.mismatch]), [[subnetOf(hg), 'host-gw', true]]);
    assert.deepEqual(await routesTo(tb, hosts[0].ns, subnetOf(udp)), [], 'host-gw routes nothing to a udp node');
    const m = await httpGet(tb, hosts[0].ns, `http://127.0.0.1:${HEALTHZ_PORT}/metrics`);
    assert.match(m.body, /^weft_ignored_peers\{backend_type=""\} 1$/m);

    // A udp peer's lease changes (its PublicIP, not its kind): still ignored, not warned about again.
    const other = '10.244.220.0/24';
    await writeLeaseFile(leaseDir, other, '{"PublicIP":"192.168.100.30","PublicIPv6":null}');
    const ignoredAt = async (ip: string): Promise<boolean> =>
      (await weftStatus(tb, hg) as { ignoredPeers: { subnet: string; publicIp: string }[] }).ignoredPeers.some((p) => p.subnet === other && p.publicIp === ip);
    await within(5_000, () => ignoredAt('192.168.100.30'), () => tail(hg));
    await writeLeaseFile(leaseDir, other, '{"PublicIP":"192.168.100.31","PublicIPv6":null}');
    await within(5_000, () => ignoredAt('192.168.100.31'), () => tail(hg));
    const log = await logOf(hg);
    assert.equal(count(log, `ignoring non-host-gw subnet ${other}`), 1, log);
    assert.equal(count(log, hgWarn), 1, log);
    assert.equal(count(await logOf(udp), udpWarn), 1, await tail(udp));
  });
});

describe('alloc: a lease and nothing else', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`al${process.pid % 10000}`);
  let dir = '';
  let hosts: [Host, Host];
  const nodes: WeftNode[] = [];
  const before0: HostState[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-al-'));
    ({ hosts } = await twoHosts(tb));
    for (const h of hosts) before0.push(await hostState(tb, h.ns));
    for (const h of hosts) {
      nodes.push(await startWeftNode(tb, h, { dir, netConf: '{"Network":"192.168.244.0/22","Backend":{"Type":"alloc"}}' }));
    }
  });
  after(async () => {
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('flannel\'s lease bytes, the underlay MTU, no device, route or rule of its own; the lease outlives the daemon', async () => {
    assert.notEqual(nodes[0]!.subnet, nodes[1]!.subnet);
    for (const [i, n] of nodes.entries()) {
      const h = hosts[i]!;
      assert.match(n.subnet, /^192\.168\.24[4-7]\.1\/24$/);
      assert.equal(await readFile(join(dir, 'leases', leaseKey(subnetOf(n))), 'utf8'), `{"PublicIP":"${h.underlayIp}","PublicIPv6":null}`);
      assert.equal(await readFile(n.subnetFile, 'utf8'),
        `FLANNEL_NETWORK=192.168.244.0/22\nFLANNEL_SUBNET=${n.subnet}\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n`);
      const now = await hostState(tb, h.ns);
      const was = before0[i]!;
      // The FORWARD accept rules are every backend's (--iptables-forward-rules, on by default); nothing else changed.
      assert.deepEqual({ ...now, rules: '' }, { ...was, rules: '' }, `${h.name}: alloc touched links, addresses or routes`);
      assert.match(now.rules, /FLANNEL-FWD/);
      const s = await weftStatus(tb, n) as { mode: string; tun: string; offloads: { path: string } };
      assert.deepEqual([s.mode, s.tun, s.offloads.path], ['alloc', '', 'none']);
      assert.match(await logOf(n), /ready: alloc \(a lease only, no data plane\), MTU 1500/);
    }
    await stopNode(nodes[0]!);
    await access(join(dir, 'leases', leaseKey(subnetOf(nodes[0]!))));
  });
});

describe('bad input: refused before the host is touched; unusable peer leases warned about', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`bi${process.pid % 10000}`);
  let dir = '';
  let hosts: [Host, Host];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-bi-'));
    ({ hosts } = await twoHosts(tb));
  });
  after(async () => {
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('wrong net-conf for host-gw and alloc, host-gw behind NAT: the message, exit 1, the host as it was', async () => {
    const h = hosts[0];
    const cases: [string, string, string[], RegExp][] = [
      ['host-gw behind NAT', '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}', ['--public-ip=192.168.100.50'],
        /your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not supported by host-gw backend \(public IP 192\.168\.100\.50, eth0 has 192\.168\.100\.1\)/],
      ['host-gw without Network', '{"Backend":{"Type":"host-gw"}}', [], /bad-net-conf\.json: please define a correct Network parameter/],
      ['alloc with IPv6', '{"Network":"192.168.244.0/22","EnableIPv6":true,"IPv6Network":"fd00:10::/56","Backend":{"Type":"alloc"}}', [],
        /weft carries IPv4 only: .* in \S+bad-net-conf\.json/],
      ['alloc with a bad SubnetLen', '{"Network":"192.168.244.0/22","SubnetLen":31,"Backend":{"Type":"alloc"}}', [], /bad-net-conf\.json: SubnetLen 31 is too long/],
      ['a backend weft lacks', '{"Network":"10.244.0.0/16","Backend":{"Type":"ipip"}}', [],
        /backend type "ipip" is not implemented by weft, which runs "udp", "vxlan", "host-gw", "alloc": .* in \S+bad-net-conf\.json/],
    ];
    for (const [what, conf, extra, want] of cases) {
      const was = await hostState(tb, h.ns);
      const r = await startRefused(tb, h, dir, conf, extra);
      assert.equal(r.code, 1, `${what}: exit code\n${r.stderr}`);
      assert.match(r.stderr, want, what);
      assert.deepEqual(await hostState(tb, h.ns), was, `${what}: the host changed`);
      await assert.rejects(access(join(dir, 'bad.subnet.env')), `${what}: no subnet.env`);
      assert.deepEqual(await readdir(join(dir, 'bad-leases')).catch(() => []), [], `${what}: no lease taken`);
    }
  });

  test('--ip-blackhole-route: a blackhole route for our subnet, put back every --iptables-resync seconds', async () => {
    // A lease directory of its own: the next test's node must not see this lease.
    const own = join(dir, 'blackhole');
    await mkdir(own);
    const n = await startWeftNode(tb, hosts[0], {
      dir: own, netConf: '{"Network":"192.168.244.0/22","Backend":{"Type":"alloc"}}', extraArgs: ['--ip-blackhole-route', '--iptables-resync=1'],
    });
    const subnet = subnetOf(n);
    const blackholes = async (): Promise<string> => (await tb.run(null, ['ip', '-n', hosts[0].ns, 'route', 'show', 'type', 'blackhole'])).stdout.trim();
    assert.equal(await blackholes(), `blackhole ${subnet}`, 'in place once ready');
    assert.match(await logOf(n), new RegExp(`blackhole route for ${subnet.replace(/\./g, '\\.')} added`));
    await tb.run(null, ['ip', '-n', hosts[0].ns, 'route', 'del', 'blackhole', subnet]);
    await within(3_000, async () => (await blackholes()) === `blackhole ${subnet}`, async () => `blackholes: ${await blackholes()}\n${await tail(n)}`);
    await stopNode(n);
  });

  test('a lease file that is not a flannel lease, a vxlan lease without a VtepMAC: skipped, each warned about once', async () => {
    const leaseDir = join(dir, 'leases');
    const n = await startWeftNode(tb, hosts[1], { dir, netConf: '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Mode":"userspace"}}' });
    await writeLeaseFile(leaseDir, '10.244.210.0/24', '{"PublicIP":"192.168.100.9",');
    await writeLeaseFile(leaseDir, '10.244.211.0/24', '{"PublicIP":"192.168.100.9","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1}}');
    const garbage = `ignoring lease ${join(leaseDir, '10.244.210.0-24')}: lease value`;
    const noMac = 'ignoring subnet 10.244.211.0/24 at 192.168.100.9: its BackendData {"VNI":1} has no valid VtepMAC';
    await within(5_000, async () => (await logOf(n)).includes(garbage) && (await logOf(n)).includes(noMac), () => tail(n));
    await sleep(1000); // several polls of the lease directory
    const log = await logOf(n);
    assert.equal(count(log, garbage), 1, log);
    assert.match(log, /^W\d{4} [\d:.]+ +\d+ lease\.ts:\d+\] ignoring lease /m, 'a klog warning line from the lease decoder');
    assert.equal(count(log, noMac), 1, log);
    const s = await weftStatus(tb, n) as { peers: unknown[]; ignoredPeers: { subnet: string; mismatch: boolean }[] };
    assert.deepEqual(s.peers, []);
    assert.deepEqual(s.ignoredPeers.map((p) => [p.subnet, p.mismatch]), [['10.244.211.0/24', false]]);
  });
});
