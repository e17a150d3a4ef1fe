/**
 * deploy/kube-weft.yml: every object validates against the Kubernetes API
 * schemas (kubernetes-models), the ClusterRole grants exactly what the code
 * calls, and the DaemonSet carries what the daemon needs on a node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import { Namespace, ServiceAccount, ConfigMap } from 'kubernetes-models/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { checkConflist } from '../../src/cli/install-cni.js';
import { parseNetConf } from '../../src/config/net-conf.js';
import { parseFlags } from '../../src/config/flags.js';

// Tests run from dist/test/deploy; the repository root is three levels up.
const ROOT = new URL('../../../', import.meta.url).pathname;
const MANIFEST = join(ROOT, 'deploy', 'kube-weft.yml');

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function load(): Obj[] {
  return loadAll(readFileSync(MANIFEST, 'utf8')).filter((d): d is Obj => d !== null && d !== undefined) as Obj[];
}

function one(docs: Obj[], kind: string): Obj {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind} in ${MANIFEST}`);
  return found[0] as Obj;
}

function podSpec(docs: Obj[]): Obj {
  return one(docs, 'DaemonSet').spec.template.spec as Obj;
}

function container(docs: Obj[], name: string, init = false): Obj {
  const list = (init ? podSpec(docs).initContainers : podSpec(docs).containers) as Obj[];
  const c = list.find((x) => x.name === name);
  assert.ok(c, `${init ? 'init ' : ''}container ${name}`);
  return c;
}

test('manifest: every object validates against the Kubernetes API schema', () => {
  const docs = load();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const models: Record<string, new (d: any) => { validate(): void }> = {
    'v1/Namespace': Namespace,
    'v1/ServiceAccount': ServiceAccount,
    'v1/ConfigMap': ConfigMap,
    'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
    'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
    'apps/v1/DaemonSet': DaemonSet,
  };
  assert.deepEqual(docs.map((d) => d.kind).sort(), Object.keys(models).map((k) => k.split('/').pop()).sort());
  for (const d of docs) {
    const M = models[`${d.apiVersion}/${d.kind}`];
    assert.ok(M, `unexpected object ${d.apiVersion} ${d.kind}`);
    assert.doesNotThrow(() => new M(d).validate(), `${d.kind} ${d.metadata?.name}`);
  }
});

test('manifest: the schema check has teeth (a broken DaemonSet fails)', () => {
  const ds = structuredClone(one(load(), 'DaemonSet'));
  delete ds.spec.selector;
  assert.throws(() => new DaemonSet(ds).validate(), /selector/);
  const ds2 = structuredClone(one(load(), 'DaemonSet'));
  ds2.spec.template.spec.containers[0].securityContext.capabilities.add = 'NET_ADMIN';
  assert.throws(() => new DaemonSet(ds2).validate(), /capabilities\/add/);
});

test('manifest: names and namespace are flannel-compatible and bound together', () => {
  const docs = load();
  const ns = one(docs, 'Namespace').metadata.name as string;
  assert.equal(ns, 'kube-flannel');
  for (const d of docs) if (d.kind !== 'Namespace' && !d.kind.startsWith('Cluster')) assert.equal(d.metadata.namespace, ns, d.kind);
  assert.equal(one(docs, 'ConfigMap').metadata.name, 'kube-flannel-cfg');
  const sa = one(docs, 'ServiceAccount').metadata.name;
  const binding = one(docs, 'ClusterRoleBinding');
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: sa, namespace: ns }]);
  assert.equal(binding.roleRef.name, one(docs, 'ClusterRole').metadata.name);
  assert.equal(podSpec(docs).serviceAccountName, sa);
  const ds = one(docs, 'DaemonSet');
  for (const [k, v] of Object.entries(ds.spec.selector.matchLabels as Record<string, string>)) {
    assert.equal(ds.spec.template.metadata.labels[k], v, `selector label ${k}`);
  }
});

// CoreV1Api method → RBAC (resource, verb): read→get, replace→update; the
// kind is plural and lower-case; a …Status method is the status subresource.
const KINDS = 'Pod|Node|Event|ConfigMap|Lease|Secret|Service|Endpoints|Namespace';
const CALL = new RegExp(`\\b(read|list|patch|replace|create|delete)(?:Namespaced)?(${KINDS})(Status)?\\(`, 'g');
const VERB: Record<string, string> = { read: 'get', list: 'list', patch: 'patch', replace: 'update', create: 'create', delete: 'delete' };

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (n.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** (resource verb) pairs the daemon's Kubernetes code calls, found in src/. */
function usedPermissions(): Set<string> {
  const used = new Set<string>();
  for (const f of sources(join(ROOT, 'src'))) {
    const text = readFileSync(f, 'utf8');
    if (!text.includes('@kubernetes/client-node')) continue;
    for (const m of text.matchAll(CALL)) {
      const kind = (m[2] as string).toLowerCase();
      const resource = `${kind.endsWith('s') ? kind : `${kind}s`}${m[3] === undefined ? '' : '/status'}`;
      used.add(`${resource} ${VERB[m[1] as string]}`);
    }
    // Watch('/api/v1/<resource>') and informers on a path: list + watch.
    for (const m of text.matchAll(/\.watch\(\s*['"`]\/api\/v1\/([a-z]+)['"`]/g)) used.add(`${m[1]} watch`);
    for (const m of text.matchAll(/makeInformer\([^,]+,\s*['"`]\/api\/v1\/([a-z]+)['"`]/g)) {
      used.add(`${m[1]} list`);
      used.add(`${m[1]} watch`);
    }
  }
  return used;
}

test('manifest: the ClusterRole grants exactly the API calls the code makes', () => {
  const role = one(load(), 'ClusterRole');
  const granted = new Set<string>();
  for (const r of role.rules as Obj[]) {
    assert.deepEqual(r.apiGroups, [''], 'core API group only');
    assert.equal(r.resourceNames, undefined);
    for (const res of r.resources as string[]) for (const v of r.verbs as string[]) granted.add(`${res} ${v}`);
  }
  // flannel's ClusterRole for --kube-subnet-mgr, the floor in any case.
  const flannel = ['pods get', 'nodes get', 'nodes list', 'nodes watch', 'nodes/status patch'];
  assert.deepEqual([...granted].sort(), [...flannel].sort());
  const used = usedPermissions();
  const kube = join(ROOT, 'src', 'subnet', 'kube.ts');
  if (statSync(kube, { throwIfNoEntry: false }) !== undefined) {
    // The Kubernetes lease store exists: what it calls must be granted, and
    // nothing granted may go unused.
    assert.ok(used.size > 0, 'src/subnet/kube.ts makes API calls the scan should find');
    for (const u of used) assert.ok(granted.has(u), `the code calls "${u}" but the ClusterRole does not grant it`);
    for (const g of granted) assert.ok(used.has(g), `the ClusterRole grants "${g}" but no code in src/ uses it`);
  }
});

test('manifest: DaemonSet runs on every node, host network, node-critical', () => {
  const spec = podSpec(load());
  assert.equal(spec.hostNetwork, true);
  assert.equal(spec.priorityClassName, 'system-node-critical');
  assert.ok((spec.tolerations as Obj[]).some((t) => t.operator === 'Exists' && t.effect === 'NoSchedule'));
});

test('manifest: main container has NET_ADMIN and NET_RAW, not privileged, the TUN device and flannel paths', () => {
  const docs = load();
  const spec = podSpec(docs);
  const c = container(docs, 'weft');
  assert.equal(c.securityContext.privileged, false);
  assert.deepEqual([...c.securityContext.capabilities.add].sort(), ['NET_ADMIN', 'NET_RAW']);
  const vols = new Map((spec.volumes as Obj[]).map((v) => [v.name as string, v]));
  const mounts = new Map((c.volumeMounts as Obj[]).map((m) => [m.mountPath as string, vols.get(m.name)]));
  assert.deepEqual(mounts.get('/dev/net/tun')?.hostPath, { path: '/dev/net/tun', type: 'CharDevice' });
  assert.deepEqual(mounts.get('/run/xtables.lock')?.hostPath, { path: '/run/xtables.lock', type: 'FileOrCreate' });
  assert.equal(mounts.get('/run/flannel')?.hostPath.path, '/run/flannel');
  assert.equal(mounts.get('/etc/kube-flannel/')?.configMap.name, 'kube-flannel-cfg');
  for (const ic of spec.initContainers as Obj[]) assert.notEqual(ic.securityContext?.privileged, true);
  const hostPaths = (spec.volumes as Obj[]).filter((v) => v.hostPath).map((v) => v.hostPath.path).sort();
  assert.deepEqual(hostPaths, ['/dev/net/tun', '/etc/cni/net.d', '/opt/cni/bin', '/run/flannel', '/run/xtables.lock']);
  const env = new Map((c.env as Obj[]).map((e) => [e.name as string, e]));
  assert.equal(env.get('POD_NAME')?.valueFrom.fieldRef.fieldPath, 'metadata.name');
  assert.equal(env.get('POD_NAMESPACE')?.valueFrom.fieldRef.fieldPath, 'metadata.namespace');
  assert.equal(env.get('EVENT_QUEUE_DEPTH')?.value, '5000');
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
});

test('manifest: the daemon arguments parse with the flag table; probes hit the health port', () => {
  const c = container(load(), 'weft');
  assert.deepEqual(c.command, ['weft']);
  const { flags, positionals } = parseFlags(c.args as string[], {});
  assert.deepEqual(positionals, []);
  assert.equal(flags.ipMasq, true);
  assert.equal(flags.kubeSubnetMgr, true);
  assert.ok(flags.healthzPort > 0, '--healthz-port must be set for the probes');
  const port = (c.ports as Obj[]).find((p) => p.name === 'health');
  assert.equal(port?.containerPort, flags.healthzPort);
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  for (const p of [c.livenessProbe, c.readinessProbe]) assert.ok(p.httpGet.port === 'health' || p.httpGet.port === flags.healthzPort);
  // Ports the node's own components hold (hostNetwork shares them).
  assert.ok(![10248, 10249, 10250, 10256, 10257, 10258, 10259].includes(flags.healthzPort));
});

test('manifest: init containers install the flannel plugin, then the conflist with weft install-cni', () => {
  const docs = load();
  const init = podSpec(docs).initContainers as Obj[];
  assert.deepEqual(init.map((c) => c.name), ['install-cni-plugin', 'install-cni']);
  const plugin = container(docs, 'install-cni-plugin', true);
  assert.match(plugin.image, /^(ghcr\.io\/flannel-io|docker\.io\/flannel)\/flannel-cni-plugin:v1\.\d+\.\d+-flannel\d+$/);
  assert.deepEqual([...plugin.command, ...plugin.args], ['cp', '-f', '/flannel', '/opt/cni/bin/flannel']);
  const cni = container(docs, 'install-cni', true);
  assert.deepEqual(cni.command, ['weft']);
  assert.equal(cni.args[0], 'install-cni');
  assert.ok(cni.args.includes('--dest=/etc/cni/net.d/10-flannel.conflist'));
  assert.equal(cni.image, container(docs, 'weft').image);
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
  assert.ok((cni.image as string).endsWith(`:${version}`), `image tag is the package version ${version}`);
});

test('manifest: the ConfigMap holds flannel\'s conflist and a net-conf weft accepts (udp)', () => {
  const data = one(load(), 'ConfigMap').data as Record<string, string>;
  assert.deepEqual(Object.keys(data).sort(), ['cni-conf.json', 'net-conf.json']);
  assert.deepEqual(checkConflist(data['cni-conf.json'] as string, 'cni-conf.json'), ['flannel', 'portmap']);
  const cni = JSON.parse(data['cni-conf.json'] as string);
  assert.equal(cni.name, 'cbr0');
  assert.deepEqual(cni.plugins[0].delegate, { hairpinMode: true, isDefaultGateway: true });
  const nc = parseNetConf(data['net-conf.json'] as string);
  assert.equal(nc.backend.type, 'udp');
  assert.equal(nc.enableNFTables, false);
  assert.equal(nc.subnetLen, 24);
});
