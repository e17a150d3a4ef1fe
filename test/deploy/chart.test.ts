/**
 * deploy/chart (the Helm chart named flannel) with a real helm: lint; every
 * rendered object validates against the Kubernetes API schemas; net-conf.json
 * is valid JSON that weft parses and that equals what flannel's chart writes
 * for the same values (written out below from its template's rules); the
 * daemon's command parses with weft's flag table; flannel's own helm-unittest
 * cases on the DaemonSet; weft's values map to weft's flags and to scrape
 * configuration.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load as loadYaml, loadAll } from 'js-yaml';
import { ServiceAccount, ConfigMap } from 'kubernetes-models/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { checkConflist } from '../../src/cli/install-cni.js';
import { parseNetConf } from '../../src/config/net-conf.js';
import { parseFlags } from '../../src/config/flags.js';
import { CHART, helm, needsHelm, template, templateError, valuesFile } from '../helpers/helm.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ROOT = new URL('../../../', import.meta.url).pathname;
const NS = 'kube-flannel';

function one(docs: Obj[], kind: string): Obj {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0] as Obj;
}

const ds = (docs: Obj[]): Obj => one(docs, 'DaemonSet');
const pod = (docs: Obj[]): Obj => ds(docs).spec.template.spec as Obj;
const main = (docs: Obj[]): Obj => pod(docs).containers[0] as Obj;
const netConfText = (docs: Obj[]): string => one(docs, 'ConfigMap').data['net-conf.json'] as string;

/** The daemon's flags as the image's /opt/bin/flanneld (weft) receives them. */
function daemonFlags(docs: Obj[]): ReturnType<typeof parseFlags>['flags'] {
  const cmd = main(docs).command as string[];
  assert.equal(cmd[0], '/opt/bin/flanneld');
  assert.equal(main(docs).args, undefined, 'the flags are in command, as in flannel\'s chart');
  const { flags, positionals } = parseFlags(cmd.slice(1), {});
  assert.deepEqual(positionals, []);
  return flags;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const MODELS: Record<string, new (d: any) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'apps/v1/DaemonSet': DaemonSet,
};

const DURATION = /^(0|(\d+(ms|s|m|h|d|w|y))+)$/; // Prometheus's duration syntax

/**
 * kubernetes-models has no Prometheus operator types: the PodMonitor's
 * metadata is checked with the ObjectMeta schema (inside a ConfigMap) and
 * its spec against the fields the operator's CRD defines for what we write.
 */
function validatePodMonitor(pm: Obj, docs: Obj[]): void {
  assert.deepEqual(Object.keys(pm).sort(), ['apiVersion', 'kind', 'metadata', 'spec']);
  new ConfigMap({ metadata: pm.metadata }).validate();
  assert.deepEqual(Object.keys(pm.spec).sort(), ['podMetricsEndpoints', 'selector']);
  const labels = ds(docs).spec.template.metadata.labels as Record<string, string>;
  for (const [k, v] of Object.entries(pm.spec.selector.matchLabels as Record<string, string>)) assert.equal(labels[k], v, `selector ${k}`);
  const ports = new Set(((main(docs).ports ?? []) as Obj[]).map((p) => p.name as string));
  for (const ep of pm.spec.podMetricsEndpoints as Obj[]) {
    for (const k of Object.keys(ep)) assert.ok(['port', 'path', 'interval'].includes(k), `endpoint field ${k}`);
    assert.ok(ports.has(ep.port), `endpoint port ${ep.port} is a named port of the daemon`);
    assert.match(ep.path, /^\//);
    if (ep.interval !== undefined) assert.match(ep.interval, DURATION);
  }
}

/** Every object is one the chart may make, in the release's namespace, valid. */
function validateAll(docs: Obj[]): void {
  for (const d of docs) {
    if (d.kind === 'PodMonitor') {
      assert.equal(d.apiVersion, 'monitoring.coreos.com/v1');
      validatePodMonitor(d, docs);
    } else {
      const M = MODELS[`${d.apiVersion}/${d.kind}`];
      assert.ok(M, `unexpected object ${d.apiVersion} ${d.kind}`);
      assert.doesNotThrow(() => new M(d).validate(), `${d.kind} ${d.metadata?.name}`);
    }
    if (!d.kind.startsWith('Cluster')) assert.equal(d.metadata.namespace, NS, `${d.kind} in the release namespace`);
  }
  assert.ok(!docs.some((d) => d.kind === 'Namespace'), 'the chart creates no Namespace, as flannel\'s');
}

const DEFAULTS = loadYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Obj;

/** The values the issue names, plus weft's. */
const CUSTOM = {
  podCidr: '10.42.0.0/16',
  flannel: {
    args: ['--ip-masq', '--kube-subnet-mgr', '--iface=eth1'],
    backend: 'vxlan',
    backendPort: 4789,
    mtu: 1450,
    vni: 4096,
  },
  netpol: { enabled: true },
  weft: {
    vxlanMode: 'kernel',
    workers: 2,
    offloads: false,
    metricsPerPeer: true,
    logFormat: 'json',
    metrics: { podAnnotations: true, podMonitor: { enabled: true, labels: { release: 'prometheus' }, interval: '30s' } },
  },
};

test('chart: Chart.yaml is named flannel; app version and image tag are the package version', () => {
  const chart = loadYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as Obj;
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
  assert.equal(chart.apiVersion, 'v2');
  assert.equal(chart.name, 'flannel');
  assert.equal(chart.appVersion, version);
  assert.equal(chart.version, version);
  assert.equal(DEFAULTS.flannel.image.tag, version);
});

test('chart: helm lint --strict passes with the default and with the custom values', (t: TestContext) => {
  const bin = needsHelm(t);
  if (bin === null) return;
  for (const extra of [[], ['-f', valuesFile(CUSTOM)]]) {
    const r = helm(bin, ['lint', '--strict', CHART, '--namespace', NS, ...extra]);
    assert.equal(r.status, 0, `helm lint ${extra.join(' ')}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('chart: the default values render flannel\'s objects, valid, with flannel\'s net-conf and --healthz-port=8081', (t: TestContext) => {
  const bin = needsHelm(t);
  if (bin === null) return;
  const docs = template(bin);
  validateAll(docs);
  assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort(), [
    'ClusterRole/flannel', 'ClusterRoleBinding/flannel', 'ConfigMap/kube-flannel-cfg', 'DaemonSet/kube-flannel-ds', 'ServiceAccount/flannel',
  ]);
  assert.deepEqual(one(docs, 'ClusterRoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'flannel', namespace: NS }]);
  assert.equal(pod(docs).serviceAccountName, 'flannel');
  // Byte for byte what flannel's chart writes for its defaults: switching
  // charts leaves the ConfigMap as it is.
  assert.equal(netConfText(docs), '{\n  "Network": "10.244.0.0/16",\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n');
  const cni = one(docs, 'ConfigMap').data['cni-conf.json'] as string;
  assert.equal(cni, DEFAULTS.flannel.cniConf);
  assert.deepEqual(checkConflist(cni, 'cni-conf.json'), ['flannel', 'portmap']);
  const nc = parseNetConf(netConfText(docs));
  assert.equal(nc.backend.type, 'vxlan');
  const flags = daemonFlags(docs);
  assert.equal(flags.healthzPort, 8081);
  assert.ok((main(docs).command as string[]).includes('--healthz-port=8081'));
  assert.equal(flags.ipMasq, true);
  assert.equal(flags.kubeSubnetMgr, true);
  // What weft needs on the node, as deploy/kube-weft.yml has it.
  const spec = pod(docs);
  assert.equal(spec.hostNetwork, true);
  assert.equal(spec.priorityClassName, 'system-node-critical');
  assert.deepEqual(spec.tolerations, [{ effect: 'NoExecute', operator: 'Exists' }, { effect: 'NoSchedule', operator: 'Exists' }]);
  const c = main(docs);
  assert.equal(c.name, 'kube-flannel');
  assert.deepEqual(c.securityContext, { privileged: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } });
  assert.deepEqual(c.resources, { requests: { cpu: '100m', memory: '50Mi' } });
  const env = Object.fromEntries((c.env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
  assert.deepEqual(env, { POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', EVENT_QUEUE_DEPTH: '5000', CONT_WHEN_CACHE_NOT_READY: 'false' });
  const vols = new Map((spec.volumes as Obj[]).map((v) => [v.name as string, v]));
  const mounts = new Map((c.volumeMounts as Obj[]).map((m) => [m.mountPath as string, vols.get(m.name)]));
  assert.deepEqual(mounts.get('/dev/net/tun')?.hostPath, { path: '/dev/net/tun', type: 'CharDevice' });
  assert.deepEqual(mounts.get('/run/xtables.lock')?.hostPath, { path: '/run/xtables.lock', type: 'FileOrCreate' });
  assert.equal(mounts.get('/run/flannel')?.hostPath.path, '/run/flannel');
  assert.equal(mounts.get('/etc/kube-flannel/')?.configMap.name, 'kube-flannel-cfg');
  assert.equal(vols.get('cni-plugin')?.hostPath.path, '/opt/cni/bin');
  assert.equal(vols.get('cni')?.hostPath.path, '/etc/cni/net.d');
  // The same images, selector and ClusterRole as the plain manifest.
  const manifest = loadAll(readFileSync(join(ROOT, 'deploy', 'kube-weft.yml'), 'utf8')) as Obj[];
  const mds = one(manifest, 'DaemonSet');
  assert.deepEqual(ds(docs).spec.selector, mds.spec.selector);
  assert.equal(c.image, mds.spec.template.spec.containers[0].image);
  assert.equal(spec.initContainers[0].image, mds.spec.template.spec.initContainers[0].image);
  assert.deepEqual(one(docs, 'ClusterRole').rules, one(manifest, 'ClusterRole').rules);
});

test('chart: the custom values render valid objects; net-conf, flags, the netpol sidecar and its RBAC, scraping', (t: TestContext) => {
  const bin = needsHelm(t);
  if (bin === null) return;
  const docs = template(bin, CUSTOM);
  validateAll(docs);
  const nc = JSON.parse(netConfText(docs));
  assert.deepEqual(nc, { Network: '10.42.0.0/16', Backend: { Port: 4789, VNI: 4096, MTU: 1450, Mode: 'kernel', Type: 'vxlan' } });
  const parsed = parseNetConf(netConfText(docs));
  assert.equal(parsed.backend.type, 'vxlan');
  if (parsed.backend.type === 'vxlan') {
    assert.deepEqual([parsed.backend.port, parsed.backend.vni, parsed.backend.mtu, parsed.backend.mode], [4789, 4096, 1450, 'kernel']);
  }
  assert.deepEqual(main(docs).command, [
    '/opt/bin/flanneld', '--ip-masq', '--kube-subnet-mgr', '--iface=eth1', '--healthz-port=8081',
    '--workers=2', '--offloads=false', '--metrics-per-peer', '--log-format=json',
  ]);
  const flags = daemonFlags(docs);
  assert.deepEqual(
    [flags.iface, flags.healthzPort, flags.workers, flags.offloads, flags.metricsPerPeer, flags.logFormat],
    [['eth1'], 8081, 2, false, true, 'json'],
  );
  // kube-network-policies beside the daemon, as flannel's chart runs it.
  const np = (pod(docs).containers as Obj[]).find((x) => x.name === 'kube-network-policies') as Obj;
  assert.ok(np, 'the netpol sidecar');
  assert.equal(np.image, `${DEFAULTS.netpol.image.repository}:${DEFAULTS.netpol.image.tag}`);
  assert.deepEqual(np.command, ['/bin/netpol', ...DEFAULTS.netpol.args]);
  assert.deepEqual(np.env, [{ name: 'MY_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
  assert.equal(np.securityContext.privileged, true);
  const libModules = (pod(docs).volumes as Obj[]).find((v) => v.name === 'lib-modules');
  assert.deepEqual(libModules?.hostPath, { path: '/lib/modules' });
  assert.deepEqual(np.volumeMounts, [{ name: 'lib-modules', mountPath: '/lib/modules', readOnly: true }]);
  const granted = new Set<string>();
  for (const r of one(docs, 'ClusterRole').rules as Obj[]) {
    for (const g of r.apiGroups as string[]) for (const res of r.resources as string[]) for (const v of r.verbs as string[]) granted.add(`${g}/${res} ${v}`);
  }
  for (const need of [
    '/pods list', '/pods watch', '/namespaces list', '/namespaces watch', '/nodes list', '/nodes watch',
    'networking.k8s.io/networkpolicies list', 'networking.k8s.io/networkpolicies watch',
    'policy.networking.k8s.io/adminnetworkpolicies list', 'policy.networking.k8s.io/baselineadminnetworkpolicies watch',
  ]) assert.ok(granted.has(need), `netpol needs ${need}`);
  // /metrics on the health port, for annotation-based and operator-based Prometheus.
  assert.deepEqual(ds(docs).spec.template.metadata.annotations, {
    'prometheus.io/scrape': 'true', 'prometheus.io/port': '8081', 'prometheus.io/path': '/metrics',
  });
  const pm = one(docs, 'PodMonitor');
  assert.equal(pm.metadata.name, 'flannel');
  assert.equal(pm.metadata.labels.release, 'prometheus');
  assert.deepEqual(pm.spec, {
    selector: { matchLabels: { app: 'flannel' } },
    podMetricsEndpoints: [{ port: 'healthz', path: '/metrics', interval: '30s' }],
  });
});

/**
 * net-conf.json per flannel's chart template (templates/config.yaml): Network
 * or "EnableIPv4": false; IPv6Network + EnableIPv6 with podCidrv6;
 * EnableNFTables only when true; Backend keys per type in the template's
 * order, each only when its value is truthy; Type last. Where flannel writes
 * wireguard's Mode unquoted (not JSON), the expected value is the string.
 * `weftMode`: weft's Backend.Mode, which this chart adds before Type (vxlan
 * only, and not for auto).
 */
const NET_CONF_CASES: { name: string; values: Obj; extra?: string[]; flannel: Obj; weftMode?: string }[] = [
  { name: 'defaults', values: {}, flannel: { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } } },
  {
    name: 'vxlan with every option',
    values: { flannel: { backend: 'vxlan', backendPort: 4789, vni: 4096, GBP: true, directRouting: true, mtu: 1450, macPrefix: '0E-2A' } },
    flannel: { Network: '10.244.0.0/16', Backend: { Port: 4789, VNI: 4096, GBP: true, DirectRouting: true, MTU: 1450, MacPrefix: '0E-2A', Type: 'vxlan' } },
  },
  {
    name: 'vxlan in weft\'s userspace mode, wireguard keys ignored',
    values: { flannel: { vni: 7, psk: 'x', tunnelMode: 'auto', backendPortv6: 51821, keepaliveInterval: 25 }, weft: { vxlanMode: 'userspace' } },
    flannel: { Network: '10.244.0.0/16', Backend: { VNI: 7, Type: 'vxlan' } },
    weftMode: 'userspace',
  },
  {
    name: 'vxlan options given as strings (--set-string)',
    values: {},
    extra: ['--set-string', 'flannel.vni=4096,flannel.backendPort=4789,flannel.GBP=true,flannel.mtu=1450'],
    flannel: { Network: '10.244.0.0/16', Backend: { Port: 4789, VNI: 4096, GBP: true, MTU: 1450, Type: 'vxlan' } },
  },
  {
    name: 'falsy options are left out',
    values: { flannel: { backendPort: 0, vni: 0, GBP: false, directRouting: false, mtu: 0, macPrefix: '' }, weft: { vxlanMode: 'auto' } },
    flannel: { Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } },
  },
  {
    name: 'wireguard with tunnelMode, psk and keepalive',
    values: {
      flannel: {
        backend: 'wireguard', backendPort: 51820, backendPortv6: 51821, psk: 'fr2gNq+HqTh1tb2nlGvOr2TKMdXUaMt0xbNj2NTeQdM=', mtu: 1420,
        tunnelMode: 'separate', keepaliveInterval: 25, vni: 9, GBP: true,
      },
      weft: { vxlanMode: 'kernel' },
    },
    flannel: {
      Network: '10.244.0.0/16',
      Backend: {
        ListenPort: 51820, ListenPortV6: 51821, PSK: 'fr2gNq+HqTh1tb2nlGvOr2TKMdXUaMt0xbNj2NTeQdM=', MTU: 1420,
        Mode: 'separate', PersistentKeepaliveInterval: 25, Type: 'wireguard',
      },
    },
  },
  {
    name: 'udp with its port; vxlan keys ignored',
    values: { flannel: { backend: 'udp', backendPort: 8285, vni: 4, mtu: 1400 } },
    flannel: { Network: '10.244.0.0/16', Backend: { Port: 8285, Type: 'udp' } },
  },
  {
    name: 'host-gw: Type only',
    values: { flannel: { backend: 'host-gw', backendPort: 1, mtu: 1400, directRouting: true } },
    flannel: { Network: '10.244.0.0/16', Backend: { Type: 'host-gw' } },
  },
  { name: 'alloc: Type only', values: { flannel: { backend: 'alloc', vni: 3 } }, flannel: { Network: '10.244.0.0/16', Backend: { Type: 'alloc' } } },
  {
    name: 'dual stack with podCidrv6 and nftables',
    values: { podCidrv6: 'fd00:10:244::/56', flannel: { enableNFTables: true } },
    flannel: { Network: '10.244.0.0/16', IPv6Network: 'fd00:10:244::/56', EnableIPv6: true, EnableNFTables: true, Backend: { Type: 'vxlan' } },
  },
  {
    name: 'IPv6 only: podCidr empty',
    values: { podCidr: '', podCidrv6: 'fd00:10:244::/56' },
    flannel: { EnableIPv4: false, IPv6Network: 'fd00:10:244::/56', EnableIPv6: true, Backend: { Type: 'vxlan' } },
  },
  { name: 'podCidr empty, no IPv6', values: { podCidr: '' }, flannel: { EnableIPv4: false, Backend: { Type: 'vxlan' } } },
];

test('chart: net-conf.json is JSON weft parses and equals flannel\'s chart\'s for each backend', (t: TestContext) => {
  const bin = needsHelm(t);
  if (bin === null) return;
  for (const c of NET_CONF_CASES) {
    const docs = template(bin, c.values, c.extra);
    validateAll(docs);
    const text = netConfText(docs);
    let json: unknown;
    assert.doesNotThrow(() => { json = JSON.parse(text); }, `${c.name}: valid JSON:\n${text}`);
    const want = structuredClone(c.flannel);
    if (c.weftMode !== undefined) {
      const { Type, ...rest } = want.Backend as Obj;
      want.Backend = { ...rest, Mode: c.weftMode, Type };
    }
    // Same keys in flannel's order, same values and types.
    assert.deepEqual(json, want, c.name);
    assert.equal(JSON.stringify(json), JSON.stringify(want), `${c.name}: key order`);
    const nc = parseNetConf(text);
    assert.equal(nc.backend.type, (c.flannel.Backend as Obj).Type, c.name);
    assert.equal(nc.enableIPv4, c.flannel.EnableIPv4 !== false, c.name);
    assert.equal(nc.enableIPv6, c.flannel.EnableIPv6 === true, c.name);
    if (nc.backend.type === 'wireguard') {
      const { Type: _type, ...options } = c.flannel.Backend as Obj;
      assert.deepEqual(nc.backend.options, options, `${c.name}: wireguard options as written`);
    }
  }
});

test('chart: the daemon\'s flags parse for every backend and always carry --healthz-port=8081', (t: TestContext) => {
  const bin = needsHelm(t);
  if (bin === null) return;
  for (const backend of ['vxlan', 'udp', 'host-gw', 'alloc', 'wireguard']) {
    const docs = template(bin, { flannel: { backend } });
    assert.ok((main(docs).command as string[]).includes('--healthz-port=8081'), backend);
    assert.equal(daemonFlags(docs).healthzPort, 8081, backend);
  }
});

// flannel's chart/kube-flannel/tests/daemonset_test.yaml (helm-unittest),
// the same ten cases on this chart's DaemonSet.
test('chart: flannel\'s helm-unittest cases on the DaemonSet', async (t: TestContext) => {
  const bin = needsHelm(t);
  if (bin === null) return;
  await t.test('api version, kind and name', () => {
    const d = ds(template(bin));
    assert.equal(d.kind, 'DaemonSet');
    assert.equal(d.apiVersion, 'apps/v1');
    assert.equal(d.metadata.name, 'kube-flannel-ds');
  });
  await t.test('image override', () => {
    const docs = template(bin, { flannel: { image: { repository: 'cicker.io/flannel/flannel', tag: 'v555.44.3' } } });
    assert.equal(pod(docs).containers[0].image, 'cicker.io/flannel/flannel:v555.44.3');
    assert.equal(pod(docs).initContainers[1].image, 'cicker.io/flannel/flannel:v555.44.3');
  });
  await t.test('cni image override', () => {
    const docs = template(bin, { flannel: { flannel_cni: { image: { repository: 'cicker.io/flannel/flannel-cni-plugin', tag: 'v777.66.5' } } } });
    assert.equal(pod(docs).initContainers[0].image, 'cicker.io/flannel/flannel-cni-plugin:v777.66.5');
  });
  await t.test('args become the command, with --healthz-port', () => {
    const docs = template(bin, { flannel: { args: ['--ip-masq', '--kube-subnet-mgr'] } });
    assert.deepEqual(pod(docs).containers[0].command, ['/opt/bin/flanneld', '--ip-masq', '--kube-subnet-mgr', '--healthz-port=8081']);
  });
  await t.test('healthz port and probes by default', () => {
    const c = main(template(bin));
    assert.deepEqual(c.ports[0], { name: 'healthz', containerPort: 8081, protocol: 'TCP' });
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'healthz' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'healthz' });
    // flannel's probe timings (values.yaml).
    assert.deepEqual([c.livenessProbe.initialDelaySeconds, c.livenessProbe.periodSeconds], [10, 30]);
    assert.deepEqual([c.readinessProbe.initialDelaySeconds, c.readinessProbe.periodSeconds], [5, 10]);
  });
  await t.test('healthz.port 0 removes the flag, the port and the probes', () => {
    const docs = template(bin, { flannel: { healthz: { port: 0 } } });
    const c = main(docs);
    assert.deepEqual(c.command, ['/opt/bin/flanneld', '--ip-masq', '--kube-subnet-mgr']);
    assert.equal(c.ports, undefined);
    assert.equal(c.livenessProbe, undefined);
    assert.equal(c.readinessProbe, undefined);
    assert.equal(daemonFlags(docs).healthzPort, 0);
  });
  await t.test('image pull secrets', () => {
    const docs = template(bin, { global: { imagePullSecrets: [{ name: 'a-test-secret' }] } });
    assert.deepEqual(pod(docs).imagePullSecrets, [{ name: 'a-test-secret' }]);
    assert.equal(pod(template(bin)).imagePullSecrets, undefined);
  });
  await t.test('install-cni present by default, running /opt/bin/install-conf', () => {
    const init = pod(template(bin)).initContainers as Obj[];
    const ic = init.find((c) => c.name === 'install-cni') as Obj;
    assert.ok(ic);
    assert.deepEqual([...ic.command, ...ic.args], ['/opt/bin/install-conf', '/etc/kube-flannel/cni-conf.json', '/etc/cni/net.d/10-flannel.conflist']);
  });
  await t.test('install-cni absent with skipCNIConfigInstallation', () => {
    const init = pod(template(bin, { flannel: { skipCNIConfigInstallation: true } })).initContainers as Obj[];
    assert.deepEqual(init.map((c) => c.name), ['install-cni-plugin']);
  });
  await t.test('nodeSelector', () => {
    const docs = template(bin, { flannel: { nodeSelector: { 'eks.amazonaws.com/compute-type': 'hybrid' } } });
    assert.equal(pod(docs).nodeSelector['eks.amazonaws.com/compute-type'], 'hybrid');
    assert.equal(pod(template(bin)).nodeSelector, undefined);
  });
});

test('chart: flannel\'s other values: host directories, resources, tolerations', (t: TestContext) => {
  const bin = needsHelm(t);
  if (bin === null) return;
  const docs = template(bin, {
    flannel: {
      cniBinDir: '/home/kubernetes/bin', cniConfDir: '/etc/cni/conf.d',
      resources: { requests: { cpu: '200m', memory: '128Mi' }, limits: { memory: '256Mi' } },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'net', effect: 'NoSchedule' }],
      cniConf: '{"name":"cbr0","cniVersion":"1.0.0","plugins":[{"type":"flannel"}]}',
    },
  });
  validateAll(docs);
  const vols = new Map((pod(docs).volumes as Obj[]).map((v) => [v.name as string, v]));
  assert.equal(vols.get('cni-plugin')?.hostPath.path, '/home/kubernetes/bin');
  assert.equal(vols.get('cni')?.hostPath.path, '/etc/cni/conf.d');
  assert.deepEqual(main(docs).resources, { requests: { cpu: '200m', memory: '128Mi' }, limits: { memory: '256Mi' } });
  assert.deepEqual(pod(docs).tolerations, [{ key: 'dedicated', operator: 'Equal', value: 'net', effect: 'NoSchedule' }]);
  assert.equal(one(docs, 'ConfigMap').data['cni-conf.json'], '{"name":"cbr0","cniVersion":"1.0.0","plugins":[{"type":"flannel"}]}');
});

test('chart: each weft value adds exactly its flag; the defaults add none', (t: TestContext) => {
  const bin = needsHelm(t);
  if (bin === null) return;
  const base = ['/opt/bin/flanneld', '--ip-masq', '--kube-subnet-mgr', '--healthz-port=8081'];
  const cases: [Obj, string[]][] = [
    [{}, []],
    [{ workers: 0, offloads: true, metricsPerPeer: false, logFormat: 'text', vxlanMode: 'auto' }, []],
    [{ workers: 4 }, ['--workers=4']],
    [{ offloads: false }, ['--offloads=false']],
    [{ metricsPerPeer: true }, ['--metrics-per-peer']],
    [{ logFormat: 'json' }, ['--log-format=json']],
    [{ vxlanMode: 'userspace' }, []],
  ];
  for (const [weft, want] of cases) {
    const docs = template(bin, { weft });
    assert.deepEqual(main(docs).command, [...base, ...want], JSON.stringify(weft));
    daemonFlags(docs);
    assert.equal(ds(docs).spec.template.metadata.annotations, undefined);
    assert.ok(!docs.some((d) => d.kind === 'PodMonitor'));
  }
  // The annotations follow the health port.
  const docs = template(bin, { flannel: { healthz: { port: 9100 } }, weft: { metrics: { podAnnotations: true } } });
  assert.equal(ds(docs).spec.template.metadata.annotations['prometheus.io/port'], '9100');
  assert.equal(daemonFlags(docs).healthzPort, 9100);
});

test('chart: values weft or flanneld would refuse fail the render, naming the value', (t: TestContext) => {
  const bin = needsHelm(t);
  if (bin === null) return;
  const cases: [Obj, RegExp][] = [
    [{ weft: { vxlanMode: 'fast' } }, /weft\.vxlanMode must be auto, kernel or userspace/],
    [{ flannel: { backend: 'udp' }, weft: { vxlanMode: 'fast' } }, /weft\.vxlanMode/],
    [{ weft: { logFormat: 'xml' } }, /weft\.logFormat must be text or json/],
    [{ weft: { workers: 2000 } }, /weft\.workers .*at most 1024/],
    [{ weft: { workers: -1 } }, /weft\.workers .*whole number/],
    [{ weft: { offloads: 'maybe' } }, /weft\.offloads must be true or false/],
    [{ flannel: { vni: 16777216 } }, /flannel\.vni must be at most 16777215/],
    [{ flannel: { backendPort: 'http' } }, /flannel\.backendPort must be a whole number/],
    [{ flannel: { mtu: 1450.5 } }, /flannel\.mtu must be a whole number/],
    [{ flannel: { healthz: { port: 70000 } } }, /flannel\.healthz\.port .*at most 65535/],
    [{ flannel: { backend: '' } }, /flannel\.backend must name a backend/],
    [{ flannel: { cniConf: '{"name": ' } }, /flannel\.cniConf is not JSON/],
    [{ flannel: { healthz: { port: 0 } }, weft: { metrics: { podAnnotations: true } } }, /need flannel\.healthz\.port/],
    [{ flannel: { healthz: { port: 0 } }, weft: { metrics: { podMonitor: { enabled: true } } } }, /need flannel\.healthz\.port/],
  ];
  for (const [values, want] of cases) assert.match(templateError(bin, values), want, JSON.stringify(values));
});
