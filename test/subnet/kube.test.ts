import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_EVENT_QUEUE_DEPTH,
  KubeLeaseStore,
  eventQueueDepthFromEnv,
  kubeAnnotations,
  loadKubeConfig,
  resolveNodeName,
  type KubeLeaseStoreOptions,
} from '../../src/subnet/kube.js';
import { subnetKey, type Lease, type LeaseAttrs } from '../../src/subnet/lease.js';
import type { LeaseNetConf, PeerEvent } from '../../src/subnet/store.js';
import { isWeftError } from '../../src/errors.js';
import { formatIpv4, parseIpv4 as ip, parseIpv4Prefix as pfx } from '../../src/wire/ipv4-addr.js';
import { FakeKubeApi, type JsonObject } from '../helpers/fake-kube-api.js';

const P = 'flannel.alpha.coreos.com';
const CONF: LeaseNetConf = { network: pfx('10.244.0.0/16'), subnetLen: 24, subnetMin: ip('10.244.1.0'), subnetMax: ip('10.244.255.0') };
const T = { timeout: 10_000 };

const UDP: LeaseAttrs = { publicIp: ip('192.168.1.10'), publicIpv6: null };

/** The annotations a flanneld udp node carries after AcquireLease. */
function flannelAnn(publicIp: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    [`${P}/backend-data`]: 'null',
    [`${P}/backend-type`]: '',
    [`${P}/kube-subnet-manager`]: 'true',
    [`${P}/public-ip`]: publicIp,
    ...extra,
  };
}

interface Env {
  api: FakeKubeApi;
  dir: string;
  kubeconfig: string;
  store(extra?: Partial<KubeLeaseStoreOptions>): KubeLeaseStore;
}

async function setup(t: TestContext, opts: { historyLimit?: number } = {}): Promise<Env> {
  const api = new FakeKubeApi(opts);
  await api.start();
  const dir = mkdtempSync(join(tmpdir(), 'weft-kube-'));
  const kubeconfig = api.writeKubeconfig(dir);
  writeFileSync(join(dir, 'net-conf.json'), '{"Network": "10.244.0.0/16", "Backend": {"Type": "udp"}}\n');
  const stores: KubeLeaseStore[] = [];
  t.after(async () => {
    for (const s of stores) await s.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    api,
    dir,
    kubeconfig,
    store(extra = {}) {
      const s = new KubeLeaseStore({
        kubeconfigFile: kubeconfig,
        nodeName: 'node-a',
        annotationPrefix: P,
        netConfPath: join(dir, 'net-conf.json'),
        retryMs: 50,
        ...extra,
      });
      stores.push(s);
      return s;
    },
  };
}

class Events {
  readonly all: PeerEvent[] = [];
  batches = 0;
  revoked = 0;
  private waiters: Array<() => void> = [];
  push = (evs: PeerEvent[]): void => {
    this.batches++;
    this.all.push(...evs);
    this.wake();
  };
  revoke = (): void => {
    this.revoked++;
    this.wake();
  };
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}; got ${JSON.stringify(this.show())}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
  show(): string[][] {
    return this.all.map((e) => [e.type, subnetKey(e.lease.subnet), formatIpv4(e.lease.attrs.publicIp)]);
  }
  count(type: PeerEvent['type'], subnet: string): number {
    return this.all.filter((e) => e.type === type && subnetKey(e.lease.subnet) === subnetKey(pfx(subnet))).length;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function watchOpen(api: FakeKubeApi): Promise<void> {
  const deadline = Date.now() + 5000;
  while (api.watchCount === 0) {
    if (Date.now() > deadline) throw new Error('no watch connected');
    await sleep(5);
  }
}

/** Our node with its lease acquired, and a watch running. */
async function watching(env: Env, extra: Partial<KubeLeaseStoreOptions> = {}): Promise<{ store: KubeLeaseStore; own: Lease; ev: Events; stop: () => void }> {
  if (env.api.getNode('node-a') === undefined) env.api.addNode({ name: 'node-a', podCIDR: '10.244.1.0/24' });
  const store = env.store(extra);
  const own = await store.acquire(CONF, { attrs: UDP, previous: null });
  const ev = new Events();
  const stop = store.watch(own, ev.push, ev.revoke);
  await ev.until(() => ev.batches >= 1, 5000, 'the first batch');
  await watchOpen(env.api);
  return { store, own, ev, stop };
}

// ---- acquire -----------------------------------------------------------------

test('acquire: lease = podCIDR; the status patches are byte for byte what flanneld sends (udp)', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-a', podCIDR: '10.244.3.0/24' });
  const s = env.store();
  const lease = await s.acquire(CONF, { attrs: UDP, previous: null });
  assert.equal(subnetKey(lease.subnet), '10.244.3.0-24');
  assert.equal(formatIpv4(lease.attrs.publicIp), '192.168.1.10');
  assert.equal(lease.attrs.backendType, undefined);
  assert.ok(lease.expiration > Date.now() + 365 * 86_400_000, 'kube leases do not expire');
  assert.doesNotThrow(() => new Date(lease.expiration).toISOString());

  assert.equal(env.api.patches.length, 2);
  const [ann, cond] = env.api.patches as [{ name: string; contentType: string | undefined; body: string }, { name: string; contentType: string | undefined; body: string }];
  assert.equal(ann.name, 'node-a');
  assert.equal(ann.contentType, 'application/strategic-merge-patch+json');
  // strategicpatch.CreateTwoWayMergePatch output: changed keys only, sorted; udp has BackendType "" and BackendData null.
  assert.equal(
    ann.body,
    '{"metadata":{"annotations":{"flannel.alpha.coreos.com/backend-data":"null","flannel.alpha.coreos.com/backend-type":"","flannel.alpha.coreos.com/kube-subnet-manager":"true","flannel.alpha.coreos.com/public-ip":"192.168.1.10"}}}',
  );
  assert.equal(cond.contentType, 'application/strategic-merge-patch+json');
  const m = /^\{"status":\{"conditions":\[\{"type":"NetworkUnavailable","status":"False","lastHeartbeatTime":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)","lastTransitionTime":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)","reason":"FlannelIsUp","message":"Flannel is running on this node"\}\]\}\}$/.exec(cond.body);
  assert.ok(m !== null, `condition patch: ${cond.body}`);
  assert.equal(m[1], m[2]);
  assert.ok(Math.abs(Date.parse(m[1] as string) - Date.now()) < 5000);

  // The server-side node: annotations merged (kubelet's kept), condition added next to Ready.
  const node = env.api.getNode('node-a') as JsonObject;
  const anns = (node.metadata as JsonObject).annotations as Record<string, string>;
  assert.equal(anns['node.alpha.kubernetes.io/ttl'], '0');
  assert.equal(anns[`${P}/public-ip`], '192.168.1.10');
  const conds = (node.status as JsonObject).conditions as JsonObject[];
  assert.deepEqual(conds.map((c) => [c.type, c.status, c.reason ?? '']), [['Ready', 'True', 'KubeletReady'], ['NetworkUnavailable', 'False', 'FlannelIsUp']]);

  // A restart with the same attributes publishes nothing new (flanneld compares first).
  const again = await env.store().acquire(CONF, { attrs: UDP, previous: null });
  assert.equal(subnetKey(again.subnet), '10.244.3.0-24');
  assert.equal(env.api.patches.length, 3);
  assert.match((env.api.patches[2] as { body: string }).body, /^\{"status":/);
});

test('acquire: vxlan attributes become backend-type/backend-data; a new public IP patches only what changed', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-a', podCIDR: '10.244.7.0/24', annotations: flannelAnn('192.168.1.10') });
  const s = env.store({ setNodeNetworkUnavailable: false });
  const vx: LeaseAttrs = { publicIp: ip('192.168.1.11'), publicIpv6: null, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' } };
  const lease = await s.acquire(CONF, { attrs: vx, previous: null });
  assert.equal(lease.attrs.backendType, 'vxlan');
  assert.equal(env.api.patches.length, 1, 'no condition patch with setNodeNetworkUnavailable=false');
  assert.equal(
    (env.api.patches[0] as { body: string }).body,
    '{"metadata":{"annotations":{"flannel.alpha.coreos.com/backend-data":"{\\"VNI\\":1,\\"VtepMAC\\":\\"c6:d2:32:6f:8f:44\\"}","flannel.alpha.coreos.com/backend-type":"vxlan","flannel.alpha.coreos.com/public-ip":"192.168.1.11"}}}',
  );
});

test('acquire: a node without podCIDR → ENOPODCIDR naming the node and both fixes; nothing published', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-a' });
  await assert.rejects(env.store().acquire(CONF, { attrs: UDP, previous: null }), (e: unknown) => {
    assert.ok(isWeftError(e, 'ENOPODCIDR'), String(e));
    assert.match(e.message, /^node "node-a" pod cidr not assigned: /, "flanneld's words first");
    assert.match(e.message, /kube-controller-manager with --allocate-node-cidrs=true --cluster-cidr=10\.244\.0\.0\/16/);
    assert.match(e.message, /kubeadm init --pod-network-cidr=10\.244\.0\.0\/16/);
    return true;
  });
  assert.equal(env.api.patches.length, 0);
});

test('acquire: a podCIDR outside Network → EPODCIDR with both values', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-a', podCIDR: '10.96.5.0/24' });
  await assert.rejects(env.store().acquire(CONF, { attrs: UDP, previous: null }), (e: unknown) => {
    assert.ok(isWeftError(e, 'EPODCIDR'), String(e));
    assert.match(e.message, /10\.96\.5\.0\/24/);
    assert.match(e.message, /10\.244\.0\.0\/16/);
    assert.match(e.message, /node-a/);
    return true;
  });
  // A podCIDR wider than Network is outside it too (flannel's containsCIDR).
  env.api.modifyNode('node-a', (n) => { (n.spec as JsonObject).podCIDR = '10.0.0.0/8'; (n.spec as JsonObject).podCIDRs = ['10.0.0.0/8']; });
  await assert.rejects(env.store().acquire(CONF, { attrs: UDP, previous: null }), (e: unknown) => isWeftError(e, 'EPODCIDR'));
  assert.equal(env.api.patches.length, 0);
});

test('acquire: IPv4 entry of podCIDRs is used in a dual-stack node', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-a', podCIDR: 'fd00:10:244:1::/64', podCIDRs: ['fd00:10:244:1::/64', '10.244.9.0/24'] });
  const lease = await env.store().acquire(CONF, { attrs: UDP, previous: null });
  assert.equal(subnetKey(lease.subnet), '10.244.9.0-24');
});

test('acquire: public-ip-overwrite is published and becomes our PublicIP; node-public-ip is readable', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({
    name: 'node-a',
    podCIDR: '10.244.2.0/24',
    annotations: { [`${P}/public-ip-overwrite`]: '203.0.113.5', [`${P}/node-public-ip`]: '192.168.1.77' },
  });
  const s = env.store({ setNodeNetworkUnavailable: false });
  assert.equal(formatIpv4((await s.getStoredPublicIp()) as number), '192.168.1.77');
  const lease = await s.acquire(CONF, { attrs: UDP, previous: null });
  assert.equal(formatIpv4(lease.attrs.publicIp), '203.0.113.5');
  assert.equal(
    (env.api.patches[0] as { body: string }).body,
    '{"metadata":{"annotations":{"flannel.alpha.coreos.com/backend-data":"null","flannel.alpha.coreos.com/backend-type":"","flannel.alpha.coreos.com/kube-subnet-manager":"true","flannel.alpha.coreos.com/public-ip":"203.0.113.5"}}}',
  );
  // Restart: everything already published; flanneld's patch would be "{}", we send none.
  await env.store({ setNodeNetworkUnavailable: false }).acquire(CONF, { attrs: UDP, previous: null });
  assert.equal(env.api.patches.length, 1);
});

test('acquire: unknown node → ENONODE; no kube-subnet-mgr credentials → EKUBEAUTH', T, async (t) => {
  const env = await setup(t);
  await assert.rejects(env.store({ nodeName: 'ghost' }).acquire(CONF, { attrs: UDP, previous: null }), (e: unknown) => {
    assert.ok(isWeftError(e, 'ENONODE'), String(e));
    assert.match(e.message, /ghost/);
    return true;
  });
  env.api.addNode({ name: 'node-a', podCIDR: '10.244.1.0/24' });
  const bad = join(env.dir, 'bad-kubeconfig');
  writeFileSync(bad, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'c', cluster: { server: env.api.url } }],
    users: [{ name: 'u', user: { token: 'wrong' } }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
  }));
  await assert.rejects(env.store({ kubeconfigFile: bad }).acquire(CONF, { attrs: UDP, previous: null }), (e: unknown) => isWeftError(e, 'EKUBEAUTH'));
});

test('getNetworkConfig reads the mounted net-conf; renew is a no-op; release leaves the annotations', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-a', podCIDR: '10.244.1.0/24' });
  const s = env.store();
  assert.match(await s.getNetworkConfig(), /"Network": "10\.244\.0\.0\/16"/);
  await assert.rejects(env.store({ netConfPath: join(env.dir, 'nope.json') }).getNetworkConfig(), (e: unknown) => isWeftError(e, 'ECONFIG') && /nope\.json/.test(e.message));
  const lease = await s.acquire(CONF, { attrs: UDP, previous: null });
  assert.equal(await s.renew(lease), lease);
  const n = env.api.patches.length;
  await s.release(lease);
  assert.equal(env.api.patches.length, n);
  const anns = ((env.api.getNode('node-a') as JsonObject).metadata as JsonObject).annotations as Record<string, string>;
  assert.equal(anns[`${P}/kube-subnet-manager`], 'true');
});

// ---- watch -------------------------------------------------------------------

test('watch: first batch lists flannel peers (not us, not unmanaged); added/changed/removed as flanneld reacts', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-b', podCIDR: '10.244.2.0/24', annotations: flannelAnn('192.168.1.2') });
  env.api.addNode({ name: 'node-x', podCIDR: '10.244.8.0/24' }); // no flannel annotations: ignored
  const { ev } = await watching(env);
  assert.deepEqual(ev.show(), [['added', '10.244.2.0-24', '192.168.1.2']]);

  // A flanneld vxlan node joins.
  env.api.addNode({
    name: 'node-c',
    podCIDR: '10.244.3.0/24',
    annotations: flannelAnn('192.168.1.3', { [`${P}/backend-type`]: 'vxlan', [`${P}/backend-data`]: '{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}' }),
  });
  await ev.until(() => ev.count('added', '10.244.3.0/24') === 1, 5000, 'node-c added');
  const c = ev.all.at(-1) as PeerEvent;
  assert.equal(formatIpv4(c.lease.attrs.publicIp), '192.168.1.3');
  assert.equal(c.lease.attrs.backendType, 'vxlan');
  assert.deepEqual(c.lease.attrs.backendData, { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' });

  // Unrelated changes are no events; an unmanaged node's changes neither.
  env.api.setAnnotation('node-b', 'example.com/unrelated', 'x');
  env.api.setAnnotation('node-x', 'example.com/unrelated', 'y');
  // public-ip change → changed.
  env.api.setAnnotation('node-b', `${P}/public-ip`, '192.168.1.20');
  await ev.until(() => ev.count('changed', '10.244.2.0/24') === 1, 5000, 'node-b changed');
  assert.equal(formatIpv4((ev.all.at(-1) as PeerEvent).lease.attrs.publicIp), '192.168.1.20');
  // backend-type change → changed.
  env.api.setAnnotation('node-b', `${P}/backend-type`, 'vxlan');
  await ev.until(() => ev.count('changed', '10.244.2.0/24') === 2, 5000, 'node-b changed again');
  // An unmanaged node becoming managed → added.
  env.api.setAnnotation('node-x', `${P}/public-ip`, '192.168.1.8');
  env.api.setAnnotation('node-x', `${P}/kube-subnet-manager`, 'true');
  await ev.until(() => ev.count('added', '10.244.8.0/24') === 1, 5000, 'node-x added');
  // Annotation gone → removed; node deleted → removed.
  env.api.setAnnotation('node-x', `${P}/kube-subnet-manager`, null);
  env.api.deleteNode('node-c');
  await ev.until(() => ev.count('removed', '10.244.8.0/24') === 1 && ev.count('removed', '10.244.3.0/24') === 1, 5000, 'removals');
  await sleep(100);
  assert.deepEqual(ev.show(), [
    ['added', '10.244.2.0-24', '192.168.1.2'],
    ['added', '10.244.3.0-24', '192.168.1.3'],
    ['changed', '10.244.2.0-24', '192.168.1.20'],
    ['changed', '10.244.2.0-24', '192.168.1.20'],
    ['added', '10.244.8.0-24', '192.168.1.8'],
    ['removed', '10.244.8.0-24', '192.168.1.8'],
    ['removed', '10.244.3.0-24', '192.168.1.3'],
  ]);
  assert.ok(!ev.all.some((e) => subnetKey(e.lease.subnet) === '10.244.1.0-24'), 'never our own node');
});

test('watch: backend-data that is not JSON is passed on as its text, for the backend to judge (flanneld keeps it raw)', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({
    name: 'node-b', podCIDR: '10.244.2.0/24',
    annotations: flannelAnn('192.168.1.2', { [`${P}/backend-type`]: 'vxlan', [`${P}/backend-data`]: '{"VNI":1,"VtepMAC":' }),
  });
  const { ev } = await watching(env);
  assert.deepEqual(ev.show(), [['added', '10.244.2.0-24', '192.168.1.2']]);
  assert.equal(ev.all[0]!.lease.attrs.backendData, '{"VNI":1,"VtepMAC":');
});

test('watch: an empty cluster still delivers one (empty) first batch; a moved podCIDR is removed + added', T, async (t) => {
  const env = await setup(t);
  const { ev } = await watching(env);
  assert.equal(ev.batches, 1);
  assert.equal(ev.all.length, 0);
  env.api.addNode({ name: 'node-b', podCIDR: '10.244.2.0/24', annotations: flannelAnn('192.168.1.2') });
  await ev.until(() => ev.all.length === 1, 5000, 'node-b');
  env.api.modifyNode('node-b', (n) => { (n.spec as JsonObject).podCIDR = '10.244.12.0/24'; (n.spec as JsonObject).podCIDRs = ['10.244.12.0/24']; });
  await ev.until(() => ev.all.length === 3, 5000, 'move');
  assert.deepEqual(ev.show().slice(1), [['removed', '10.244.2.0-24', '192.168.1.2'], ['added', '10.244.12.0-24', '192.168.1.2']]);
});

test('watch: 410 Gone on resume → relist and diff, each change exactly once, then the watch goes on', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-b', podCIDR: '10.244.2.0/24', annotations: flannelAnn('192.168.1.2') });
  env.api.addNode({ name: 'node-c', podCIDR: '10.244.3.0/24', annotations: flannelAnn('192.168.1.3') });
  const { ev } = await watching(env);
  assert.equal(ev.all.length, 2);
  // One live event so the watch counts as healthy, then the server ends the
  // watch; while we are away: changes, and the history is compacted.
  env.api.addNode({ name: 'node-d', podCIDR: '10.244.4.0/24', annotations: flannelAnn('192.168.1.4') });
  await ev.until(() => ev.all.length === 3, 5000, 'node-d');
  const lists = env.api.listCount();
  env.api.endWatches();
  env.api.deleteNode('node-b');
  env.api.setAnnotation('node-c', `${P}/public-ip`, '192.168.1.33');
  env.api.addNode({ name: 'node-e', podCIDR: '10.244.5.0/24', annotations: flannelAnn('192.168.1.5') });
  env.api.compact();
  await ev.until(() => ev.all.length === 6, 5000, 'the diff');
  assert.deepEqual(new Set(ev.show().slice(3).map((e) => e.join(' '))), new Set([
    'removed 10.244.2.0-24 192.168.1.2',
    'changed 10.244.3.0-24 192.168.1.33',
    'added 10.244.5.0-24 192.168.1.5',
  ]));
  assert.equal(env.api.goneCount, 1, 'the resumed watch got 410 Gone');
  assert.equal(env.api.listCount(), lists + 1, 'one relist');
  // Live again.
  env.api.addNode({ name: 'node-f', podCIDR: '10.244.6.0/24', annotations: flannelAnn('192.168.1.6') });
  await ev.until(() => ev.count('added', '10.244.6.0/24') === 1, 5000, 'node-f');
  await sleep(100);
  assert.equal(ev.all.length, 7, JSON.stringify(ev.show()));
});

test('watch: an ERROR 410 event on a live watch → relist without duplicate events', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-b', podCIDR: '10.244.2.0/24', annotations: flannelAnn('192.168.1.2') });
  const { ev } = await watching(env);
  const lists = env.api.listCount();
  env.api.expireWatches();
  const deadline = Date.now() + 5000;
  while (env.api.listCount() === lists && Date.now() < deadline) await sleep(10);
  assert.equal(env.api.listCount(), lists + 1);
  env.api.setAnnotation('node-b', `${P}/backend-data`, '{"x":1}');
  await ev.until(() => ev.count('changed', '10.244.2.0/24') === 1, 5000, 'changed');
  await sleep(100);
  assert.deepEqual(ev.show().map((e) => e[0]), ['added', 'changed']);
});

test('watch: a broken connection and failing lists are retried with backoff; nothing missed', T, async (t) => {
  const env = await setup(t);
  const { ev } = await watching(env, { retryMs: 30 });
  const lists = env.api.listCount();
  env.api.failLists = 2;
  env.api.dropWatches();
  env.api.addNode({ name: 'node-b', podCIDR: '10.244.2.0/24', annotations: flannelAnn('192.168.1.2') });
  await ev.until(() => ev.count('added', '10.244.2.0/24') === 1, 5000, 'node-b after reconnect');
  assert.ok(env.api.listCount() >= lists + 3, `lists: ${env.api.listCount() - lists}`);
  await sleep(100);
  assert.equal(ev.all.length, 1);
});

test('watch: resync re-lists and catches a change a stuck watch never delivered', T, async (t) => {
  const env = await setup(t);
  env.api.addNode({ name: 'node-b', podCIDR: '10.244.2.0/24', annotations: flannelAnn('192.168.1.2') });
  const { ev } = await watching(env, { resyncMs: 300 });
  env.api.stallWatches();
  env.api.setAnnotation('node-b', `${P}/public-ip`, '192.168.1.22');
  await ev.until(() => ev.count('changed', '10.244.2.0/24') === 1, 5000, 'resync');
  // Further resyncs with nothing new deliver nothing.
  await sleep(700);
  assert.deepEqual(ev.show(), [['added', '10.244.2.0-24', '192.168.1.2'], ['changed', '10.244.2.0-24', '192.168.1.22']]);
});

test('watch: event queue overflow (EVENT_QUEUE_DEPTH) falls back to a relist; every node once', T, async (t) => {
  const env = await setup(t);
  const { ev } = await watching(env, { eventQueueDepth: 2 });
  for (let i = 2; i < 30; i++) env.api.addNode({ name: `node-${i}`, podCIDR: `10.244.${i}.0/24`, annotations: flannelAnn(`192.168.1.${i}`) });
  await ev.until(() => ev.all.length >= 28, 5000, '28 peers');
  await sleep(150);
  assert.equal(ev.all.length, 28);
  assert.equal(new Set(ev.all.map((e) => subnetKey(e.lease.subnet))).size, 28);
  assert.ok(ev.all.every((e) => e.type === 'added'));
});

test('watch: our node losing its podCIDR or being deleted revokes our lease', T, async (t) => {
  const env = await setup(t);
  const a = await watching(env);
  env.api.modifyNode('node-a', (n) => { n.spec = {}; });
  await a.ev.until(() => a.ev.revoked === 1, 5000, 'revocation');
  a.stop();

  const env2 = await setup(t);
  const b = await watching(env2);
  env2.api.deleteNode('node-a');
  await b.ev.until(() => b.ev.revoked === 1, 5000, 'revocation on delete');
  // The watch stopped: later events are not delivered.
  env2.api.addNode({ name: 'node-b', podCIDR: '10.244.2.0/24', annotations: flannelAnn('192.168.1.2') });
  await sleep(150);
  assert.equal(b.ev.all.length, 0);
  assert.equal(b.ev.revoked, 1);
});

test('close() aborts the watch', T, async (t) => {
  const env = await setup(t);
  const { store, ev } = await watching(env);
  const deadline = Date.now() + 3000;
  while (env.api.watchCount === 0 && Date.now() < deadline) await sleep(10);
  assert.equal(env.api.watchCount, 1);
  await store.close();
  while (env.api.watchCount > 0 && Date.now() < deadline) await sleep(10);
  assert.equal(env.api.watchCount, 0);
  env.api.addNode({ name: 'node-b', podCIDR: '10.244.2.0/24', annotations: flannelAnn('192.168.1.2') });
  await sleep(100);
  assert.equal(ev.all.length, 0);
});

// ---- node name, config, annotations -------------------------------------------

test('resolveNodeName: NODE_NAME, else POD_NAMESPACE/POD_NAME → spec.nodeName, else a clear error', T, async (t) => {
  const env = await setup(t);
  env.api.addPod('kube-flannel', 'kube-flannel-ds-abcde', 'worker-7');
  env.api.addPod('kube-flannel', 'pending', null);
  const kc = loadKubeConfig({ kubeconfigFile: env.kubeconfig });
  const { CoreV1Api } = await import('@kubernetes/client-node');
  const core = kc.makeApiClient(CoreV1Api);
  assert.equal(await resolveNodeName({ NODE_NAME: 'worker-1', POD_NAME: 'x', POD_NAMESPACE: 'y' }, core), 'worker-1');
  assert.equal(await resolveNodeName({ POD_NAME: 'kube-flannel-ds-abcde', POD_NAMESPACE: 'kube-flannel' }, core), 'worker-7');
  await assert.rejects(resolveNodeName({ POD_NAME: 'x' }, core), (e: unknown) => {
    assert.ok(isWeftError(e, 'ENODENAME'));
    for (const v of ['NODE_NAME', 'POD_NAME', 'POD_NAMESPACE']) assert.match(e.message, new RegExp(v));
    return true;
  });
  await assert.rejects(resolveNodeName({ POD_NAME: 'pending', POD_NAMESPACE: 'kube-flannel' }, core), (e: unknown) => isWeftError(e, 'ENODENAME') && /kube-flannel\/pending/.test(e.message));
  await assert.rejects(resolveNodeName({ POD_NAME: 'gone', POD_NAMESPACE: 'kube-flannel' }, core), (e: unknown) => isWeftError(e, 'ENOTFOUND') && /kube-flannel\/gone/.test(e.message));

  // fromEnv: node name from the pod, queue depth from EVENT_QUEUE_DEPTH.
  env.api.addNode({ name: 'worker-7', podCIDR: '10.244.7.0/24' });
  const s = await KubeLeaseStore.fromEnv(
    { kubeconfigFile: env.kubeconfig, annotationPrefix: P, netConfPath: join(env.dir, 'net-conf.json'), setNodeNetworkUnavailable: false },
    { POD_NAME: 'kube-flannel-ds-abcde', POD_NAMESPACE: 'kube-flannel', EVENT_QUEUE_DEPTH: '77' },
  );
  t.after(() => s.close());
  assert.equal(s.nodeName, 'worker-7');
  assert.equal(s.eventQueueDepth, 77);
  assert.equal(subnetKey((await s.acquire(CONF, { attrs: UDP, previous: null })).subnet), '10.244.7.0-24');
});

test('loadKubeConfig: kubeconfig file, --kube-api-url override, in-cluster env, or a clear error', T, async (t) => {
  const env = await setup(t);
  assert.equal(loadKubeConfig({ kubeconfigFile: env.kubeconfig }).getCurrentCluster()?.server, env.api.url);
  assert.equal(loadKubeConfig({ kubeconfigFile: env.kubeconfig, apiUrl: 'http://10.0.0.1:6443' }).getCurrentCluster()?.server, 'http://10.0.0.1:6443');
  assert.equal(loadKubeConfig({ apiUrl: 'http://127.0.0.1:8080' }, {}).getCurrentCluster()?.server, 'http://127.0.0.1:8080');
  const inCluster = loadKubeConfig({}, { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' });
  assert.equal(inCluster.getCurrentCluster()?.server, 'https://10.96.0.1:443');
  const overridden = loadKubeConfig({ apiUrl: 'https://api.example:6443' }, { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' });
  assert.equal(overridden.getCurrentCluster()?.server, 'https://api.example:6443');
  assert.throws(() => loadKubeConfig({}, {}), (e: unknown) => isWeftError(e, 'EKUBECONFIG') && /KUBERNETES_SERVICE_HOST/.test(e.message) && /--kubeconfig-file/.test(e.message));
  assert.throws(() => loadKubeConfig({ kubeconfigFile: join(env.dir, 'missing') }, {}), (e: unknown) => isWeftError(e, 'EKUBECONFIG'));
  // The API server override is used for requests.
  env.api.addNode({ name: 'node-a', podCIDR: '10.244.1.0/24' });
  const s = env.store({ apiUrl: env.api.url, setNodeNetworkUnavailable: false });
  assert.equal(subnetKey((await s.acquire(CONF, { attrs: UDP, previous: null })).subnet), '10.244.1.0-24');
});

test('EVENT_QUEUE_DEPTH and annotation prefixes are read as flanneld reads them', () => {
  assert.equal(eventQueueDepthFromEnv({}), DEFAULT_EVENT_QUEUE_DEPTH);
  assert.equal(eventQueueDepthFromEnv({ EVENT_QUEUE_DEPTH: '100' }), 100);
  assert.equal(eventQueueDepthFromEnv({ EVENT_QUEUE_DEPTH: '0' }), DEFAULT_EVENT_QUEUE_DEPTH);
  assert.throws(() => eventQueueDepthFromEnv({ EVENT_QUEUE_DEPTH: 'lots' }), (e: unknown) => isWeftError(e, 'ECONFIG') && /EVENT_QUEUE_DEPTH=lots/.test(e.message));
  assert.equal(kubeAnnotations(P).backendPublicIp, 'flannel.alpha.coreos.com/public-ip');
  assert.equal(kubeAnnotations('example.com/weft').subnetKubeManaged, 'example.com/weft-kube-subnet-manager');
  assert.equal(kubeAnnotations('example.com/weft-').backendType, 'example.com/weft-backend-type');
  assert.throws(() => kubeAnnotations('a/b/c'), (e: unknown) => isWeftError(e, 'EANNOTATION'));
  assert.throws(() => kubeAnnotations('NotAnFQDN'), (e: unknown) => isWeftError(e, 'EANNOTATION'));
});
