/**
 * deploy/kube-weft.yml: every object validates against the Kubernetes API
 * schemas (kubernetes-models); against flannel's kube-flannel.yml it has the
 * same objects and differs in exactly the fields the migration guide lists;
 * the ClusterRole grants exactly what the code calls; the DaemonSet carries
 * what the daemon needs on a node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { load as loadYaml, loadAll } from 'js-yaml';
import { Namespace, ServiceAccount, ConfigMap } from 'kubernetes-models/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { checkConflist, FLANNEL_CNI_PLUGIN_IMAGE } from '../../src/cli/install-cni.js';
import { parseNetConf } from '../../src/config/net-conf.js';
import { parseFlags } from '../../src/config/flags.js';

// Tests run from dist/test/deploy; the repository root is three levels up.
const ROOT = new URL('../../../', import.meta.url).pathname;
const MANIFEST = join(ROOT, 'deploy', 'kube-weft.yml');
const MIGRATING = join(ROOT, 'docs', 'migrating-from-flannel.md');

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function objects(text: string): Obj[] {
  return loadAll(text).filter((d): d is Obj => d !== null && d !== undefined) as Obj[];
}

function load(): Obj[] {
  return objects(readFileSync(MANIFEST, 'utf8'));
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

/**
 * flannel v0.28.9's Documentation/kube-flannel.yml, the file this manifest
 * replaces: its objects and fields as flannel ships them, comments and list
 * layout aside.
 */
const FLANNEL_MANIFEST = `
kind: Namespace
apiVersion: v1
metadata:
  name: kube-flannel
  labels: {k8s-app: flannel, pod-security.kubernetes.io/enforce: privileged}
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata: {labels: {k8s-app: flannel}, name: flannel}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [get]}
  - {apiGroups: [""], resources: [nodes], verbs: [get, list, watch]}
  - {apiGroups: [""], resources: [nodes/status], verbs: [patch]}
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {labels: {k8s-app: flannel}, name: flannel}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: flannel}
subjects: [{kind: ServiceAccount, name: flannel, namespace: kube-flannel}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {labels: {k8s-app: flannel}, name: flannel, namespace: kube-flannel}
---
kind: ConfigMap
apiVersion: v1
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
  labels: {tier: node, k8s-app: flannel, app: flannel}
data:
  cni-conf.json: |
    {
      "name": "cbr0",
      "cniVersion": "0.3.1",
      "plugins": [
        {
          "type": "flannel",
          "delegate": {
            "hairpinMode": true,
            "isDefaultGateway": true
          }
        },
        {
          "type": "portmap",
          "capabilities": {
            "portMappings": true
          }
        }
      ]
    }
  net-conf.json: |
    {
      "Network": "10.244.0.0/16",
      "EnableNFTables": false,
      "Backend": {
        "Type": "vxlan"
      }
    }
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
  labels: {tier: node, app: flannel, k8s-app: flannel}
spec:
  selector: {matchLabels: {app: flannel}}
  template:
    metadata: {labels: {tier: node, app: flannel}}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]}]
      hostNetwork: true
      priorityClassName: system-node-critical
      tolerations: [{operator: Exists, effect: NoSchedule}]
      serviceAccountName: flannel
      initContainers:
        - name: install-cni-plugin
          image: ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3
          command: [cp]
          args: [-f, /flannel, /opt/cni/bin/flannel]
          volumeMounts: [{name: cni-plugin, mountPath: /opt/cni/bin}]
        - name: install-cni
          image: ghcr.io/flannel-io/flannel:v0.28.9
          command: [/opt/bin/install-conf]
          args: [/etc/kube-flannel/cni-conf.json, /etc/cni/net.d/10-flannel.conflist]
          volumeMounts: [{name: cni, mountPath: /etc/cni/net.d}, {name: flannel-cfg, mountPath: /etc/kube-flannel/}]
      containers:
        - name: kube-flannel
          image: ghcr.io/flannel-io/flannel:v0.28.9
          command: [/opt/bin/flanneld]
          args: [--ip-masq, --kube-subnet-mgr, --healthz-port=8081]
          ports: [{name: healthz, containerPort: 8081, protocol: TCP}]
          livenessProbe: {httpGet: {path: /healthz, port: healthz}, initialDelaySeconds: 10, periodSeconds: 30}
          readinessProbe: {httpGet: {path: /readyz, port: healthz}, initialDelaySeconds: 5, periodSeconds: 10}
          resources: {requests: {cpu: "100m", memory: "50Mi"}}
          securityContext: {privileged: false, capabilities: {add: [NET_ADMIN, NET_RAW]}}
          env:
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
            - {name: EVENT_QUEUE_DEPTH, value: "5000"}
            - {name: CONT_WHEN_CACHE_NOT_READY, value: "false"}
          volumeMounts:
            - {name: run, mountPath: /run/flannel}
            - {name: flannel-cfg, mountPath: /etc/kube-flannel/}
            - {name: xtables-lock, mountPath: /run/xtables.lock}
      volumes:
        - {name: run, hostPath: {path: /run/flannel}}
        - {name: cni-plugin, hostPath: {path: /opt/cni/bin}}
        - {name: cni, hostPath: {path: /etc/cni/net.d}}
        - {name: flannel-cfg, configMap: {name: kube-flannel-cfg}}
        - {name: xtables-lock, hostPath: {path: /run/xtables.lock, type: FileOrCreate}}
`;

/**
 * What `kubectl apply -f deploy/kube-weft.yml` changes over flannel's file:
 * every other field of every object is equal. docs/migrating-from-flannel.md
 * lists the same.
 */
const CHANGED_OVER_FLANNEL = [
  'DaemonSet/kube-flannel-ds spec.template.spec.containers[kube-flannel].image',
  'DaemonSet/kube-flannel-ds spec.template.spec.containers[kube-flannel].resources.limits',
  'DaemonSet/kube-flannel-ds spec.template.spec.containers[kube-flannel].resources.requests.memory',
  'DaemonSet/kube-flannel-ds spec.template.spec.containers[kube-flannel].volumeMounts[dev-net-tun]',
  'DaemonSet/kube-flannel-ds spec.template.spec.initContainers[install-cni].image',
  'DaemonSet/kube-flannel-ds spec.template.spec.volumes[dev-net-tun]',
];

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Paths where a and b differ. Lists of objects with a `name` (containers,
 * volumes, mounts, env, ports) are matched by name, as a strategic-merge
 * patch does; a field present on one side only is one path.
 */
function differences(a: unknown, b: unknown, path: string, out: string[]): string[] {
  const named = (v: unknown): v is Obj[] => Array.isArray(v) && v.length > 0 && v.every((x) => isObj(x) && typeof x.name === 'string');
  if (named(a) && named(b)) {
    const am = new Map(a.map((x) => [x.name as string, x]));
    const bm = new Map(b.map((x) => [x.name as string, x]));
    for (const k of new Set([...am.keys(), ...bm.keys()])) differences(am.get(k), bm.get(k), `${path}[${k}]`, out);
  } else if (isObj(a) && isObj(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) differences(a[k], b[k], path === '' ? k : `${path}.${k}`, out);
  } else if (JSON.stringify(a) !== JSON.stringify(b)) {
    out.push(path);
  }
  return out;
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

test('manifest: flannel\'s object names, bound together', () => {
  const docs = load();
  const ns = one(docs, 'Namespace');
  assert.equal(ns.metadata.name, 'kube-flannel');
  assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
  for (const d of docs) if (d.kind !== 'Namespace' && !d.kind.startsWith('Cluster')) assert.equal(d.metadata.namespace, 'kube-flannel', d.kind);
  assert.equal(one(docs, 'ConfigMap').metadata.name, 'kube-flannel-cfg');
  assert.equal(one(docs, 'DaemonSet').metadata.name, 'kube-flannel-ds');
  for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding']) assert.equal(one(docs, kind).metadata.name, 'flannel', kind);
  const binding = one(docs, 'ClusterRoleBinding');
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'flannel', namespace: 'kube-flannel' }]);
  assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'flannel' });
  assert.equal(podSpec(docs).serviceAccountName, 'flannel');
  const ds = one(docs, 'DaemonSet');
  // A DaemonSet's selector is immutable: it must be flannel's for apply to update it.
  assert.deepEqual(ds.spec.selector, { matchLabels: { app: 'flannel' } });
  for (const [k, v] of Object.entries(ds.spec.selector.matchLabels as Record<string, string>)) {
    assert.equal(ds.spec.template.metadata.labels[k], v, `selector label ${k}`);
  }
  assert.deepEqual((podSpec(docs).containers as Obj[]).map((c) => c.name), ['kube-flannel']);
});

test('manifest: applied over flannel\'s kube-flannel.yml it changes exactly the listed DaemonSet fields', () => {
  const ours = load();
  const theirs = objects(FLANNEL_MANIFEST);
  const key = (d: Obj): string => `${d.kind}/${d.metadata.name}`;
  assert.deepEqual(ours.map(key).sort(), theirs.map(key).sort(), 'the same objects, no more, no fewer');
  const diff: string[] = [];
  for (const t of theirs) {
    const o = ours.find((d) => key(d) === key(t));
    for (const p of differences(t, o, '', [])) diff.push(`${key(t)} ${p}`);
  }
  assert.deepEqual(diff.sort(), [...CHANGED_OVER_FLANNEL].sort());
  // The comparison itself sees a change.
  const cm = one(theirs, 'ConfigMap');
  const touched = structuredClone(cm);
  touched.data['net-conf.json'] += ' ';
  assert.deepEqual(differences(cm, touched, '', []), ['data.net-conf.json']);
  // The guide names each changed field by its name in the manifest.
  const guide = readFileSync(MIGRATING, 'utf8');
  for (const needle of ['kube-flannel-ds', 'dev-net-tun', '/dev/net/tun', 'install-cni', 'resources']) {
    assert.ok(guide.includes(needle), `docs/migrating-from-flannel.md mentions ${needle}`);
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

test('manifest: DaemonSet runs on every Linux node, host network, node-critical', () => {
  const spec = podSpec(load());
  assert.equal(spec.hostNetwork, true);
  assert.equal(spec.priorityClassName, 'system-node-critical');
  assert.ok((spec.tolerations as Obj[]).some((t) => t.operator === 'Exists' && t.effect === 'NoSchedule'));
  const term = spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0];
  assert.deepEqual(term.matchExpressions, [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }]);
});

test('manifest: main container has NET_ADMIN and NET_RAW, not privileged, the TUN device and flannel\'s paths and env', () => {
  const docs = load();
  const spec = podSpec(docs);
  const c = container(docs, 'kube-flannel');
  assert.equal(c.securityContext.privileged, false);
  assert.deepEqual([...c.securityContext.capabilities.add].sort(), ['NET_ADMIN', 'NET_RAW']);
  const vols = new Map((spec.volumes as Obj[]).map((v) => [v.name as string, v]));
  const mounts = new Map((c.volumeMounts as Obj[]).map((m) => [m.mountPath as string, vols.get(m.name)]));
  // weft's udp backend, userspace vxlan and the offload probe open it.
  assert.deepEqual(mounts.get('/dev/net/tun')?.hostPath, { path: '/dev/net/tun', type: 'CharDevice' });
  assert.deepEqual(mounts.get('/run/xtables.lock')?.hostPath, { path: '/run/xtables.lock', type: 'FileOrCreate' });
  assert.equal(mounts.get('/run/flannel')?.hostPath.path, '/run/flannel');
  assert.equal(mounts.get('/etc/kube-flannel/')?.configMap.name, 'kube-flannel-cfg');
  for (const ic of spec.initContainers as Obj[]) assert.notEqual(ic.securityContext?.privileged, true);
  const hostPaths = (spec.volumes as Obj[]).filter((v) => v.hostPath).map((v) => v.hostPath.path).sort();
  assert.deepEqual(hostPaths, ['/dev/net/tun', '/etc/cni/net.d', '/opt/cni/bin', '/run/flannel', '/run/xtables.lock']);
  const env = new Map((c.env as Obj[]).map((e) => [e.name as string, e]));
  assert.deepEqual([...env.keys()], ['POD_NAME', 'POD_NAMESPACE', 'EVENT_QUEUE_DEPTH', 'CONT_WHEN_CACHE_NOT_READY']);
  assert.equal(env.get('POD_NAME')?.valueFrom.fieldRef.fieldPath, 'metadata.name');
  assert.equal(env.get('POD_NAMESPACE')?.valueFrom.fieldRef.fieldPath, 'metadata.namespace');
  assert.equal(env.get('EVENT_QUEUE_DEPTH')?.value, '5000');
  assert.equal(env.get('CONT_WHEN_CACHE_NOT_READY')?.value, 'false');
  assert.equal(c.resources.requests.cpu, '100m');
  assert.equal(c.resources.limits.cpu, undefined, 'no CPU limit');
});

test('manifest: flanneld\'s command and arguments parse with the flag table; probes on the health port 8081', () => {
  const c = container(load(), 'kube-flannel');
  // The image links /opt/bin/flanneld to weft, where flannel's image has flanneld.
  assert.deepEqual(c.command, ['/opt/bin/flanneld']);
  const { flags, positionals } = parseFlags(c.args as string[], {});
  assert.deepEqual(positionals, []);
  assert.equal(flags.ipMasq, true);
  assert.equal(flags.kubeSubnetMgr, true);
  assert.ok((c.args as string[]).includes('--healthz-port=8081'));
  assert.equal(flags.healthzPort, 8081);
  assert.deepEqual(c.ports, [{ name: 'healthz', containerPort: 8081, protocol: 'TCP' }]);
  assert.deepEqual(c.livenessProbe, { httpGet: { path: '/healthz', port: 'healthz' }, initialDelaySeconds: 10, periodSeconds: 30 });
  assert.deepEqual(c.readinessProbe, { httpGet: { path: '/readyz', port: 'healthz' }, initialDelaySeconds: 5, periodSeconds: 10 });
});

test('manifest: init containers copy flannel\'s CNI plugin, then the conflist with /opt/bin/install-conf', () => {
  const docs = load();
  const init = podSpec(docs).initContainers as Obj[];
  assert.deepEqual(init.map((c) => c.name), ['install-cni-plugin', 'install-cni']);
  const plugin = container(docs, 'install-cni-plugin', true);
  assert.equal(plugin.image, FLANNEL_CNI_PLUGIN_IMAGE, 'the image install-cni\'s hint names');
  assert.deepEqual([...plugin.command, ...plugin.args], ['cp', '-f', '/flannel', '/opt/cni/bin/flannel']);
  const cni = container(docs, 'install-cni', true);
  assert.deepEqual([...cni.command, ...cni.args], ['/opt/bin/install-conf', '/etc/kube-flannel/cni-conf.json', '/etc/cni/net.d/10-flannel.conflist']);
  assert.deepEqual((cni.volumeMounts as Obj[]).map((m) => m.mountPath).sort(), ['/etc/cni/net.d', '/etc/kube-flannel/']);
  assert.equal(cni.image, container(docs, 'kube-flannel').image);
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
  assert.ok((cni.image as string).endsWith(`:${version}`), `image tag is the package version ${version}`);
});

test('manifest: the ConfigMap holds flannel\'s conflist and the vxlan net-conf weft accepts', () => {
  const data = one(load(), 'ConfigMap').data as Record<string, string>;
  assert.deepEqual(Object.keys(data).sort(), ['cni-conf.json', 'net-conf.json']);
  assert.deepEqual(checkConflist(data['cni-conf.json'] as string, 'cni-conf.json'), ['flannel', 'portmap']);
  const cni = JSON.parse(data['cni-conf.json'] as string);
  assert.equal(cni.name, 'cbr0');
  assert.deepEqual(cni.plugins[0].delegate, { hairpinMode: true, isDefaultGateway: true });
  const nc = parseNetConf(data['net-conf.json'] as string);
  assert.equal(nc.enableNFTables, false);
  assert.equal(nc.subnetLen, 24);
  assert.equal(nc.backend.type, 'vxlan');
  if (nc.backend.type !== 'vxlan') return;
  assert.deepEqual([nc.backend.vni, nc.backend.port, nc.backend.mode], [1, 8472, 'auto']);
});

test('manifest: the same images as the Helm chart\'s defaults', () => {
  const values = loadYaml(readFileSync(join(ROOT, 'deploy', 'chart', 'values.yaml'), 'utf8')) as Obj;
  const docs = load();
  const f = values.flannel as Obj;
  assert.equal(container(docs, 'kube-flannel').image, `${f.image.repository}:${f.image.tag}`);
  assert.equal(container(docs, 'install-cni-plugin', true).image, `${f.flannel_cni.image.repository}:${f.flannel_cni.image.tag}`);
});
