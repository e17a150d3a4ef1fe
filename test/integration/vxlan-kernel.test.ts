/**
 * weft's kernel VXLAN mode, driven directly by the test (the daemon wiring
 * is separate): two host namespaces on a veth underlay, a pod behind each
 * (gateway = lease .1, MTU 1450), ping and a TCP transfer with SHA-256
 * compared, both ways, on 8472 and on 4789; then a weft-kernel node against
 * a node configured by plain ip/bridge commands exactly as flanneld
 * programs the kernel, whose entries must look the same as weft's.
 *
 * bench/e2e/variants.ts sets up `kernel-vxlan` inside its own two-host
 * setup (not exported per host), so the flanneld-style commands are
 * written out here.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Testbed, twoHosts, attachPod, ping, type Host, type Pod } from '../../src/testbed/index.js';
import { addPeer, ensureVxlanDevice, formatMac, parseMac, setDeviceAddress, syncPeers, type VxlanPeer } from '../../src/netlink/index.js';
import { VXLAN_PORT_IANA, VXLAN_PORT_LINUX } from '../../src/wire/constants.js';
import { parseIpv4, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';
import { rootSkip } from '../helpers/root.js';
import { captureLog } from '../helpers/log.js';

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
type Obj = Record<string, unknown>;

const MTU = 1450;
const MACS = [parseMac('0a:e1:f7:00:00:01'), parseMac('0a:e1:f7:00:00:02')];
const SUBNETS = [parseIpv4Prefix('10.244.1.0/24'), parseIpv4Prefix('10.244.2.0/24')];
const TRANSFER_BYTES = 8 << 20;

describe('vxlan kernel offload: two hosts, pods, interop with a flanneld-style node', { skip: rootSkip(), timeout: 240_000 }, () => {
  const tb = new Testbed(`wk${process.pid % 10000}`);
  let hosts: [Host, Host];
  const pods: Pod[] = [];
  const logs: string[] = [];
  let tcpPort = 7100;

  const peerOf = (i: number): VxlanPeer => ({ subnet: SUBNETS[i]!, publicIp: parseIpv4(hosts[i]!.underlayIp), vtepMac: MACS[i]! });

  /** weft's kernel mode on host i, as the daemon will call it. */
  async function weftKernel(i: number, port: number): Promise<void> {
    const h = hosts[i]!;
    const r = await ensureVxlanDevice({ vni: 1, localAddr: parseIpv4(h.underlayIp), underlayDev: h.underlayIf, port, mtu: MTU,
      mac: MACS[i]!, learning: false, gbp: false, netns: h.ns, log: captureLog(logs) });
    await setDeviceAddress('flannel.1', SUBNETS[i]!, h.ns);
    const link = { dev: 'flannel.1', directRouting: false, netns: h.ns };
    // A replaced device lost its entries: resync; otherwise a plain add.
    if (r.replaced) await syncPeers(link, [peerOf(1 - i)]);
    else await addPeer(link, peerOf(1 - i));
  }

  /** Host i configured with the commands flanneld's vxlan backend amounts to. */
  async function flanneldStyle(i: number, port: number): Promise<void> {
    const h = hosts[i]!;
    const p = peerOf(1 - i);
    const peerMac = formatMac(p.vtepMac);
    const peerGw = `10.244.${2 - i}.0`;
    const ipn = (...a: string[]) => tb.run(null, ['ip', '-n', h.ns, ...a]);
    await tb.exec(null, ['ip', '-n', h.ns, 'link', 'del', 'flannel.1']);
    await ipn('link', 'add', 'flannel.1', 'mtu', String(MTU), 'address', formatMac(MACS[i]!), 'type', 'vxlan', 'id', '1',
      'local', h.underlayIp, 'dev', h.underlayIf, 'dstport', String(port), 'nolearning');
    await ipn('addr', 'add', `10.244.${i + 1}.0/32`, 'dev', 'flannel.1');
    await ipn('link', 'set', 'flannel.1', 'up');
    await ipn('neigh', 'replace', peerGw, 'lladdr', peerMac, 'dev', 'flannel.1', 'nud', 'permanent');
    await tb.run(null, ['bridge', '-n', h.ns, 'fdb', 'replace', peerMac, 'dev', 'flannel.1', 'dst', hosts[1 - i]!.underlayIp, 'self', 'permanent']);
    await ipn('route', 'replace', `${peerGw}/24`, 'via', peerGw, 'dev', 'flannel.1', 'onlink');
  }

  const json = async (ns: string, tool: string, args: string[]): Promise<Obj[]> => {
    const r = await tb.run(null, [tool, '-n', ns, '-j', ...args]);
    return r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as Obj[]);
  };
  const txPackets = async (ns: string): Promise<number> => {
    const l = (await json(ns, 'ip', ['-s', 'link', 'show', 'dev', 'flannel.1']))[0]!;
    return Number(((l.stats64 as Obj).tx as Obj).packets);
  };

  async function tcpTransfer(from: Pod, to: Pod): Promise<void> {
    const script = here('./tcp-sha.js');
    const port = String(tcpPort++);
    const server = tb.spawn(to.ns, [process.execPath, script, 'server', port], { pipe: true });
    let out = '';
    server.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const ready = Date.now() + 5000;
    while (!out.includes('listening') && Date.now() < ready) await new Promise((r) => setTimeout(r, 20));
    assert.ok(out.includes('listening'), 'tcp-sha server did not start');
    const c = await tb.run(from.ns, [process.execPath, script, 'client', to.ip, port, String(TRANSFER_BYTES)], { timeoutMs: 60_000 });
    const sent = JSON.parse(c.stdout) as { bytes: number; sha256: string };
    const end = Date.now() + 10_000;
    while (out.split('\n').length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const got = JSON.parse(out.split('\n')[1]!) as { bytes: number; sha256: string };
    assert.equal(got.bytes, TRANSFER_BYTES);
    assert.equal(got.sha256, sent.sha256);
  }

  async function traffic(what: string): Promise<void> {
    const before = await txPackets(hosts[0].ns);
    const ab = await ping(tb, pods[0]!.ns, pods[1]!.ip, { count: 4, intervalS: 0.1 });
    const ba = await ping(tb, pods[1]!.ns, pods[0]!.ip, { count: 4, intervalS: 0.1 });
    assert.equal(ab.received, 4, `${what} pod1→pod2: ${ab.output}`);
    assert.equal(ba.received, 4, `${what} pod2→pod1: ${ba.output}`);
    await tcpTransfer(pods[0]!, pods[1]!);
    await tcpTransfer(pods[1]!, pods[0]!);
    // The traffic went through the VXLAN device, not around it.
    assert.ok((await txPackets(hosts[0].ns)) - before >= 8, `${what}: flannel.1 on h1 carried the traffic`);
  }

  /** Device attributes, neighbours, FDB and routes with this host's own addresses blanked. */
  async function kernelView(i: number): Promise<unknown> {
    const h = hosts[i]!;
    const l = (await json(h.ns, 'ip', ['-d', 'link', 'show', 'dev', 'flannel.1']))[0]!;
    const info = (l.linkinfo as Obj).info_data as Obj;
    const neigh = await json(h.ns, 'ip', ['-4', 'neigh', 'show', 'dev', 'flannel.1']);
    const fdb = await json(h.ns, 'bridge', ['fdb', 'show', 'dev', 'flannel.1']);
    const routes = await json(h.ns, 'ip', ['-4', 'route', 'show', 'dev', 'flannel.1']);
    const addrs = await json(h.ns, 'ip', ['-4', 'addr', 'show', 'dev', 'flannel.1']);
    const norm = (s: string): string => s.replaceAll(h.underlayIp, 'LOCAL').replaceAll(hosts[1 - i]!.underlayIp, 'PEER')
      .replaceAll(`10.244.${i + 1}.`, 'OWN.').replaceAll(`10.244.${2 - i}.`, 'PEERNET.')
      .replaceAll(formatMac(MACS[i]!), 'OWNMAC').replaceAll(formatMac(MACS[1 - i]!), 'PEERMAC');
    return JSON.parse(norm(JSON.stringify({
      mtu: l.mtu, address: l.address, flags: l.flags, info: { ...info },
      addr: (addrs[0]?.addr_info as Obj[] | undefined)?.map((a) => ({ local: a.local, prefixlen: a.prefixlen, scope: a.scope })),
      neigh, fdb, routes,
    })));
  }

  before(async () => {
    ({ hosts } = await twoHosts(tb));
    for (let i = 0; i < 2; i++) {
      pods.push(await attachPod(tb, hosts[i]!, { podCidrHost: `10.244.${i + 1}.2/24`, gateway: `10.244.${i + 1}.1`, mtu: MTU }));
    }
  });
  after(() => tb.cleanup());

  test('weft kernel ↔ weft kernel on 8472: ping both ways, TCP both ways with SHA-256 equal', async () => {
    await weftKernel(0, VXLAN_PORT_LINUX);
    await weftKernel(1, VXLAN_PORT_LINUX);
    await traffic('8472');
  });

  test('weft kernel ↔ weft kernel on 4789 (devices replaced, peers resynced)', async () => {
    logs.length = 0;
    await weftKernel(0, VXLAN_PORT_IANA);
    await weftKernel(1, VXLAN_PORT_IANA);
    assert.match(logs.join('\n'), /port: 8472 vs 4789; recreating/);
    const info = ((await json(hosts[0].ns, 'ip', ['-d', 'link', 'show', 'dev', 'flannel.1']))[0]!.linkinfo as Obj).info_data as Obj;
    assert.equal(info.port, VXLAN_PORT_IANA);
    await traffic('4789');
  });

  for (const port of [VXLAN_PORT_LINUX, VXLAN_PORT_IANA]) {
    test(`weft kernel (h1) ↔ flanneld-style node (h2) on ${port}: same kernel state, traffic both ways`, async () => {
      await flanneldStyle(1, port);
      await weftKernel(0, port);
      // Apart from whose addresses they are, weft programmed what flanneld does.
      const weft = (await kernelView(0)) as { neigh: unknown[]; fdb: unknown[]; routes: unknown[] };
      assert.deepEqual([weft.neigh.length, weft.fdb.length, weft.routes.length], [1, 1, 1]);
      assert.deepEqual(weft, await kernelView(1));
      await traffic(`weft↔flanneld ${port}`);
    });
  }
});
