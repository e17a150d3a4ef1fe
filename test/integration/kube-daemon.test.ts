/**
 * weft daemons on the Kubernetes lease store (--kube-subnet-mgr) against an
 * API server with real HTTP and watch semantics (test/helpers/
 * kube-cluster.ts), started as the DaemonSets start flanneld:
 * - two, then three host-gw nodes (NODE_NAME, or POD_NAME + POD_NAMESPACE):
 *   leases from spec.podCIDR, flanneld's annotation patch byte for byte,
 *   NetworkUnavailable=False; a node joining later becomes a route on the
 *   others, a changed public-ip annotation moves it, a deleted node takes
 *   it away; a node without a podCIDR stops with flanneld's words and the
 *   fix, the host untouched;
 * - the net-conf.json files of real deployments, keys as written there,
 *   each started on two nodes with `--ip-masq --kube-subnet-mgr` and
 *   carrying pod traffic both ways where the backend has a data plane.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testbed, nHosts, twoHosts, waitReachable, type Host, type Pod } from '../../src/testbed/index.js';
import { attachWeftPod, startWeftNode, weftStatus, WEFT_BIN, type WeftNode } from '../../src/testbed/weft-node.js';
import { rootSkip } from '../helpers/root.js';
import { FLANNEL_PREFIX, KubeCluster } from '../helpers/kube-cluster.js';
import { routesTo } from '../helpers/flannel-host-gw-node.js';
import { hostState } from '../helpers/host-state.js';
import { pingBoth, within } from '../helpers/traffic.js';

const HOST_GW = '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}\n';
const logOf = async (n: WeftNode): Promise<string> => readFile(n.logFile, 'utf8').catch(() => '');
const tail = async (n: WeftNode): Promise<string> => `${n.host.name} log:\n${(await logOf(n)).slice(-2500)}`;

/** The routes to `dst` in `ns` as "via <gw> dev <dev>" (or "dev <dev>"), "" when there is none. */
async function routeVia(tb: Testbed, ns: string, dst: string): Promise<string> {
  const rs = await routesTo(tb, ns, dst);
  return rs.map((r) => `${r.gateway === undefined ? '' : `via ${String(r.gateway)} `}dev ${String(r.dev)}`).join('; ');
}

describe('--kube-subnet-mgr: host-gw daemons join, move and leave with the node objects', { skip: rootSkip(), timeout: 180_000 }, () => {
  const tb = new Testbed(`kd${process.pid % 10000}`);
  let dir = '';
  let kube: KubeCluster;
  let hosts: Host[] = [];
  const nodes: WeftNode[] = [];
  const pods: Pod[] = [];
  const start = async (i: number, env: Record<string, string>): Promise<WeftNode> =>
    startWeftNode(tb, hosts[i]!, { dir, netConf: HOST_GW, env, extraArgs: ['--ip-masq', ...kube.daemonArgs()] });

  /** Waits until node-1's and node-2's hosts route node-3's subnet as `want` ("" = no route). */
  const node3RouteOnOthers = async (want: string): Promise<void> => {
    for (const i of [0, 1]) {
      await within(5_000, async () => (await routeVia(tb, hosts[i]!.ns, '10.244.3.0/24')) === want,
        async () => `h${i + 1}: "${await routeVia(tb, hosts[i]!.ns, '10.244.3.0/24')}", want "${want}"\n${await tail(nodes[i]!)}`);
    }
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-kd-'));
    kube = new KubeCluster(tb, dir);
    await kube.start();
    ({ hosts } = await nHosts(tb, 3));
    for (const h of hosts) await kube.expose(h);
    // What kube-controller-manager leaves: a podCIDR each, no flannel annotations.
    for (let i = 1; i <= 3; i++) kube.api.addNode({ name: `node-${i}`, podCIDR: `10.244.${i}.0/24`, podCIDRs: [`10.244.${i}.0/24`] });
    kube.api.addPod('kube-flannel', 'kube-flannel-ds-x7k2p', 'node-2');
    nodes.push(await start(0, { NODE_NAME: 'node-1' }));
    nodes.push(await start(1, { POD_NAME: 'kube-flannel-ds-x7k2p', POD_NAMESPACE: 'kube-flannel' }));
    for (const n of nodes) pods.push(await attachWeftPod(tb, n));
  });
  after(async () => {
    await tb.cleanup();
    await kube?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('leases from spec.podCIDR; flanneld\'s annotation patch and NetworkUnavailable=False; pods reach each other', async () => {
    assert.deepEqual(nodes.map((n) => n.subnet), ['10.244.1.1/24', '10.244.2.1/24']);
    for (const [i, name] of ['node-1', 'node-2'].entries()) {
      const ip = hosts[i]!.underlayIp;
      const patch = kube.api.patches.find((p) => p.name === name && p.body.includes('annotations'));
      assert.ok(patch, `${name}: an annotation patch`);
      assert.equal(patch.contentType, 'application/strategic-merge-patch+json');
      assert.equal(patch.body, `{"metadata":{"annotations":{"${FLANNEL_PREFIX}/backend-data":"null","${FLANNEL_PREFIX}/backend-type":"host-gw",`
        + `"${FLANNEL_PREFIX}/kube-subnet-manager":"true","${FLANNEL_PREFIX}/public-ip":"${ip}"}}}`);
      assert.deepEqual(kube.flannelAnnotations(name), { 'backend-data': 'null', 'backend-type': 'host-gw', 'kube-subnet-manager': 'true', 'public-ip': ip });
      const c = kube.networkUnavailable(name);
      assert.deepEqual([c?.status, c?.reason, c?.message], ['False', 'FlannelIsUp', 'Flannel is running on this node'], name);
    }
    assert.equal(await routeVia(tb, hosts[0]!.ns, '10.244.2.0/24'), 'via 192.168.100.2 dev eth0');
    assert.equal(await routeVia(tb, hosts[1]!.ns, '10.244.1.0/24'), 'via 192.168.100.1 dev eth0');
    await pingBoth(tb, pods[0]!, pods[1]!, 'node-1 ↔ node-2');
  });

  test('a node joining later becomes a route; a changed public-ip annotation moves it; a deleted node removes it', async () => {
    const h3 = hosts[2]!;
    nodes.push(await start(2, { NODE_NAME: 'node-3' }));
    pods.push(await attachWeftPod(tb, nodes[2]!));
    await node3RouteOnOthers('via 192.168.100.3 dev eth0');
    assert.ok(await waitReachable(tb, pods[0]!.ns, pods[2]!.ip, 5_000), 'pod on node-1 reaches the pod on node-3');
    await pingBoth(tb, pods[1]!, pods[2]!, 'node-2 ↔ node-3');

    // node-3's public IP annotation changes (a second address of its host).
    await tb.run(null, ['ip', '-n', h3.ns, 'addr', 'add', '192.168.100.33/24', 'dev', h3.underlayIf]);
    kube.api.setAnnotation('node-3', `${FLANNEL_PREFIX}/public-ip`, '192.168.100.33');
    await node3RouteOnOthers('via 192.168.100.33 dev eth0');
    await pingBoth(tb, pods[0]!, pods[2]!, 'node-1 ↔ node-3 via its new address');

    kube.api.deleteNode('node-3');
    await node3RouteOnOthers('');
    // Its own node gone, node-3's daemon stops as revoked.
    await within(10_000, async () => nodes[2]!.proc.exitCode !== null, () => tail(nodes[2]!));
    assert.equal(nodes[2]!.proc.exitCode, 1);
  });

  test('a node without a podCIDR: flanneld\'s words and the fix, nothing published, the host untouched', async () => {
    const h = hosts[2]!;
    kube.api.addNode({ name: 'node-4' });
    const was = await hostState(tb, h.ns);
    const patches = kube.api.patches.length;
    const subnetFile = join(dir, 'node-4.subnet.env');
    const r = await tb.exec(h.ns, ['env', 'NODE_NAME=node-4', process.execPath, WEFT_BIN, `--iface=${h.underlayIf}`,
      `--net-config-path=${join(dir, 'h3.net-conf.json')}`, `--subnet-file=${subnetFile}`, `--control-socket=${join(dir, 'node-4.sock')}`,
      '--ip-masq', ...kube.daemonArgs()], { timeoutMs: 20_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /node "node-4" pod cidr not assigned: start kube-controller-manager with --allocate-node-cidrs=true --cluster-cidr=10\.244\.0\.0\/16, or kubeadm init --pod-network-cidr=10\.244\.0\.0\/16/);
    assert.equal(kube.api.patches.length, patches, 'nothing published');
    assert.deepEqual(await hostState(tb, h.ns), was, 'the host changed');
    await assert.rejects(access(subnetFile), 'no subnet.env');
  });
});

interface SourceConf {
  name: string;
  /** As written in the deployment's ConfigMap. */
  netConf: string;
  cidrs: [string, string];
  mtu: number;
  /** What one node's route (or device) to the other must show. */
  check: (tb: Testbed, hosts: [Host, Host]) => Promise<void>;
  traffic: boolean;
}

const SOURCE_CONFS: SourceConf[] = [
  {
    name: 'alloc on 192.168.244.0/22 (a managed service\'s production config)',
    netConf: '{\n  "Network": "192.168.244.0/22",\n  "Backend": {\n    "Type": "alloc"\n  }\n}\n',
    cidrs: ['192.168.244.0/24', '192.168.245.0/24'], mtu: 1500, traffic: false,
    check: async (tb, hosts) => assert.equal(await routeVia(tb, hosts[0].ns, '192.168.245.0/24'), '', 'alloc programs no route'),
  },
  {
    name: 'vxlan with "Directrouting": true and SubnetLen 24 on 10.42.0.0/16',
    netConf: '{\n  "Network": "10.42.0.0/16",\n  "SubnetLen": 24,\n  "Backend": {\n    "Type": "vxlan",\n    "Directrouting": true\n  }\n}\n',
    cidrs: ['10.42.1.0/24', '10.42.2.0/24'], mtu: 1450, traffic: true,
    // Both nodes on one segment: the direct route, not the tunnel.
    check: async (tb, hosts) => assert.equal(await routeVia(tb, hosts[0].ns, '10.42.2.0/24'), 'via 192.168.100.2 dev eth0'),
  },
  {
    name: 'vxlan on Port 4789, VNI 4096, MTU 1450',
    netConf: '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Port":4789,"VNI":4096,"MTU":1450}}',
    cidrs: ['10.244.1.0/24', '10.244.2.0/24'], mtu: 1450, traffic: true,
    check: async (tb, hosts) => {
      assert.equal(await routeVia(tb, hosts[0].ns, '10.244.2.0/24'), 'via 10.244.2.0 dev flannel.4096');
      const l = JSON.parse((await tb.run(null, ['ip', '-n', hosts[0].ns, '-j', '-d', 'link', 'show', 'flannel.4096'])).stdout) as
        { mtu: number; linkinfo: { info_data: { id: number; port: number } } }[];
      assert.deepEqual([l[0]!.mtu, l[0]!.linkinfo.info_data.id, l[0]!.linkinfo.info_data.port], [1450, 4096, 4789]);
    },
  },
  {
    name: 'host-gw on 10.244.0.0/16 with "EnableNFTables": false',
    netConf: '{\n  "Network": "10.244.0.0/16",\n  "EnableNFTables": false,\n  "Backend": {\n    "Type": "host-gw"\n  }\n}\n',
    cidrs: ['10.244.1.0/24', '10.244.2.0/24'], mtu: 1500, traffic: true,
    check: async (tb, hosts) => assert.equal(await routeVia(tb, hosts[0].ns, '10.244.2.0/24'), 'via 192.168.100.2 dev eth0'),
  },
  {
    name: 'udp on 10.244.0.0/16',
    netConf: '{\n  "Network": "10.244.0.0/16",\n  "Backend": {\n    "Type": "udp"\n  }\n}\n',
    cidrs: ['10.244.1.0/24', '10.244.2.0/24'], mtu: 1472, traffic: true,
    check: async (tb, hosts) => assert.equal(await routeVia(tb, hosts[0].ns, '10.244.0.0/16'), 'dev flannel0'),
  },
];

for (const [k, c] of SOURCE_CONFS.entries()) {
  describe(`--ip-masq --kube-subnet-mgr with the deployed net-conf: ${c.name}`, { skip: rootSkip(), timeout: 120_000 }, () => {
    const tb = new Testbed(`ks${k}${process.pid % 10000}`);
    let dir = '';
    let kube: KubeCluster;
    let hosts: [Host, Host];
    const nodes: WeftNode[] = [];

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'weft-ks-'));
      kube = new KubeCluster(tb, dir);
      await kube.start();
      ({ hosts } = await twoHosts(tb));
      for (const [i, h] of hosts.entries()) {
        await kube.expose(h);
        kube.api.addNode({ name: `node-${i + 1}`, podCIDR: c.cidrs[i]!, podCIDRs: [c.cidrs[i]!] });
        nodes.push(await startWeftNode(tb, h, {
          dir, netConf: c.netConf, env: { NODE_NAME: `node-${i + 1}` }, extraArgs: ['--ip-masq', ...kube.daemonArgs()],
        }));
      }
    });
    after(async () => {
      await tb.cleanup();
      await kube?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test(c.traffic ? 'starts, leases the podCIDRs, carries pod traffic both ways' : 'starts and leases the podCIDRs', async () => {
      for (const [i, n] of nodes.entries()) {
        const env = await readFile(n.subnetFile, 'utf8');
        assert.match(env, new RegExp(`^FLANNEL_SUBNET=${c.cidrs[i]!.replace('.0/', '.1/').replace(/\./g, '\\.')}$`, 'm'));
        assert.match(env, new RegExp(`^FLANNEL_MTU=${c.mtu}$`, 'm'));
        assert.match(env, /^FLANNEL_IPMASQ=true$/m);
        assert.equal(kube.flannelAnnotations(`node-${i + 1}`)['kube-subnet-manager'], 'true');
        // --ip-masq: flanneld's masquerade and forward chains, whatever the backend.
        const rules = (await tb.run(hosts[i]!.ns, ['iptables-save'])).stdout;
        assert.match(rules, /-A POSTROUTING .*-j FLANNEL-POSTRTG/, `${n.host.name}: masquerade chain hooked`);
        assert.match(rules, /-A FLANNEL-POSTRTG .*--comment "flanneld masq" -j MASQUERADE/, `${n.host.name}: masquerade rules`);
        assert.match(rules, /-A FORWARD .*-j FLANNEL-FWD/, `${n.host.name}: forward chain hooked`);
      }
      for (const n of nodes) {
        await within(5_000, async () => (await weftStatus(tb, n) as { peers: unknown[] }).peers.length === (c.traffic ? 1 : 0),
          async () => JSON.stringify(await weftStatus(tb, n)));
      }
      await c.check(tb, hosts);
      if (!c.traffic) return;
      const pods = [await attachWeftPod(tb, nodes[0]!), await attachWeftPod(tb, nodes[1]!)];
      assert.ok(await waitReachable(tb, pods[0]!.ns, pods[1]!.ip, 10_000), `pod B reachable\n${await tail(nodes[0]!)}`);
      await pingBoth(tb, pods[0]!, pods[1]!, c.name);
    });
  });
}
