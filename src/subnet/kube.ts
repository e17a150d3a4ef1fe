/**
 * Leases from Kubernetes Node objects (`--kube-subnet-mgr`), with
 * flanneld's exact annotations so weft and flanneld nodes share a cluster
 * (docs/design.md §1.2).
 *
 * What this relies on (flannel-io/flannel pkg/subnet/kube/kube.go and
 * annotations.go, v0.2x):
 *
 * - Our subnet is the node's spec.podCIDR (the IPv4 entry of podCIDRs),
 *   assigned by kube-controller-manager; nothing is allocated here.
 * - AcquireLease publishes, only when something differs, a two-way
 *   strategic-merge patch of nodes/<name>/status (Go builds it with
 *   strategicpatch.CreateTwoWayMergePatch, so the body is
 *   {"metadata":{"annotations":{…}}} with only the changed keys, sorted by
 *   encoding/json's map ordering):
 *     <prefix>/backend-type        attrs.BackendType — "" for udp, whose
 *                                  LeaseAttrs carry no BackendType
 *     <prefix>/backend-data        json of BackendData — "null" for udp
 *     <prefix>/public-ip           our PublicIP, or public-ip-overwrite
 *     <prefix>/kube-subnet-manager "true"
 *   A node's <prefix>/public-ip-overwrite replaces the published public-ip;
 *   <prefix>/node-public-ip is read at start as if given by --public-ip
 *   (GetStoredPublicIP).
 * - CompleteLease (once the network is up, unless
 *   --set-node-network-unavailable=false) patches status with
 *   {"status":{"conditions":[{"type":"NetworkUnavailable","status":"False",
 *   "lastHeartbeatTime":T,"lastTransitionTime":T,"reason":"FlannelIsUp",
 *   "message":"Flannel is running on this node"}]}} (NodeCondition field
 *   order, metav1.Time as RFC 3339 seconds in UTC).
 * - Peers: an informer on all nodes (resync 5 min); nodes without
 *   kube-subnet-manager=true are ignored; an update is an event only when
 *   backend-data, backend-type or public-ip changed; events go through a
 *   channel of EVENT_QUEUE_DEPTH (5000).
 * - Kubernetes leases never expire; renew is a no-op; release leaves the
 *   annotations in place.
 *
 * weft goes further: a podCIDR outside Network is refused before anything
 * is published (flanneld patches first, then fails), a node losing its
 * kube-subnet-manager annotation or podCIDR is a 'removed' peer, and our
 * own node losing (or changing) its podCIDR revokes our lease.
 */
import { isIPv6 } from 'node:net';
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { WeftError } from '../errors.js';
import { formatIpv4, formatIpv4Prefix, parseIpv4Prefix, prefixContains, tryParseIpv4, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import { goJson, type Lease, type LeaseAttrs } from './lease.js';
import type { AcquireOptions, LeaseNetConf, LeaseStore, PeerEvent } from './store.js';
import { readNetConfText } from '../config/net-conf.js';
import { Backoff } from '../backoff.js';

export const DEFAULT_ANNOTATION_PREFIX = 'flannel.alpha.coreos.com';
/** flannel's EVENT_QUEUE_DEPTH default. */
export const DEFAULT_EVENT_QUEUE_DEPTH = 5000;
/** flannel's informer resyncPeriod. */
export const DEFAULT_RESYNC_MS = 5 * 60_000;
/** First retry delay after a failed list or watch; doubles up to RETRY_MAX_MS. */
export const DEFAULT_RETRY_MS = 500;
const RETRY_MAX_MS = 30_000;
/** A watch that ends cleanly sooner than this without any event counts as a failure (no hot reconnect loop). */
const MIN_HEALTHY_WATCH_MS = 1_000;
/**
 * Kubernetes leases do not expire. A fixed date far ahead (not Infinity:
 * callers format it with Date#toISOString and feed it to timers, which
 * they clamp).
 */
export const KUBE_LEASE_EXPIRATION = Date.UTC(9999, 11, 31, 23, 59, 59);

const NODE_NAME_ENV_HELP = 'set NODE_NAME to this node\'s name (in a DaemonSet: env NODE_NAME from fieldRef spec.nodeName), or POD_NAME and POD_NAMESPACE (fieldRef metadata.name / metadata.namespace)';
const RBAC_HELP = 'weft needs RBAC like flanneld\'s ClusterRole: pods get; nodes get, list, watch; nodes/status patch';

// ---- annotations -----------------------------------------------------------

export interface KubeAnnotations {
  subnetKubeManaged: string;
  backendData: string;
  backendV6Data: string;
  backendType: string;
  backendPublicIp: string;
  backendPublicIpv6: string;
  backendNodePublicIp: string;
  backendNodePublicIpv6: string;
  backendPublicIpOverwrite: string;
  backendPublicIpv6Overwrite: string;
}

/**
 * flannel's newAnnotations: "fqdn" → "fqdn/"; "fqdn/x" → "fqdn/x-"; at most
 * one slash; Kubernetes' annotation key syntax.
 */
export function kubeAnnotations(prefixIn: string): KubeAnnotations {
  let prefix = prefixIn;
  const slashes = prefix.split('/').length - 1;
  if (slashes > 1) {
    throw new WeftError('EANNOTATION', `--kube-annotation-prefix "${prefixIn}" contains more than one "/"; use e.g. ${DEFAULT_ANNOTATION_PREFIX} or example.com/weft`);
  }
  if (slashes === 0) prefix += '/';
  if (!prefix.endsWith('/') && !prefix.endsWith('-')) prefix += '-';
  if (!/(?:[a-z0-9_-]+\.)+[a-z0-9_-]+\/(?:[a-z0-9_-]+-)?$/.test(prefix)) {
    throw new WeftError('EANNOTATION', `--kube-annotation-prefix "${prefixIn}" must be in the format fqdn/[0-9a-z-_]* (lower case), e.g. ${DEFAULT_ANNOTATION_PREFIX}`);
  }
  return {
    subnetKubeManaged: `${prefix}kube-subnet-manager`,
    backendData: `${prefix}backend-data`,
    backendV6Data: `${prefix}backend-v6-data`,
    backendType: `${prefix}backend-type`,
    backendPublicIp: `${prefix}public-ip`,
    backendPublicIpv6: `${prefix}public-ipv6`,
    backendNodePublicIp: `${prefix}node-public-ip`,
    backendNodePublicIpv6: `${prefix}node-public-ipv6`,
    backendPublicIpOverwrite: `${prefix}public-ip-overwrite`,
    backendPublicIpv6Overwrite: `${prefix}public-ipv6-overwrite`,
  };
}

// ---- configuration -----------------------------------------------------------

export interface KubeConfigSource {
  /** --kubeconfig-file; '' or absent = in-cluster. */
  kubeconfigFile?: string;
  /** --kube-api-url; overrides the server of whichever config is used. */
  apiUrl?: string;
}

type Env = Record<string, string | undefined>;

/**
 * Client config the way flanneld finds it: the kubeconfig file if given,
 * else the pod's service account (token and CA under
 * /var/run/secrets/kubernetes.io/serviceaccount, server from
 * KUBERNETES_SERVICE_HOST/PORT); --kube-api-url replaces the server.
 */
export function loadKubeConfig(src: KubeConfigSource, env: Env = process.env): KubeConfig {
  const kc = new KubeConfig();
  const file = src.kubeconfigFile ?? '';
  let server = src.apiUrl ?? '';
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '';
  if (file !== '') {
    try {
      kc.loadFromFile(file);
    } catch (e) {
      throw new WeftError('EKUBECONFIG', `cannot load --kubeconfig-file ${file}: ${(e as Error).message}`, { cause: e });
    }
    if (kc.getCurrentCluster() === null) {
      throw new WeftError('EKUBECONFIG', `--kubeconfig-file ${file} has no current context with a cluster; set current-context`);
    }
  } else if (host !== '' && port !== '') {
    kc.loadFromCluster();
    // loadFromCluster reads process.env itself; build the URL from `env`
    // the same way (plain http on the insecure ports, IPv6 in brackets).
    if (server === '') {
      const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
      server = `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
    }
  } else if (server !== '') {
    // No kubeconfig and not in a pod: talk to the URL without credentials
    // (e.g. an insecure local port), as client-go does.
    kc.loadFromClusterAndUser({ name: 'kube-api-url', server, skipTLSVerify: false }, { name: 'weft' });
  } else {
    throw new WeftError(
      'EKUBECONFIG',
      'no Kubernetes API to talk to: run weft in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT set, service account mounted), or pass --kubeconfig-file, or --kube-api-url',
    );
  }
  const cur = kc.getCurrentCluster();
  if (cur !== null) {
    const url = server === '' ? cur.server : server;
    // client-node refuses http:// unless skipTLSVerify is set; with plain
    // http there is no TLS to verify, and client-go accepts such servers.
    const plain = url.startsWith('http:');
    kc.clusters = kc.clusters.map((c) => (c === cur ? { ...c, server: url, skipTLSVerify: c.skipTLSVerify || plain } : c));
  }
  return kc;
}

/** EVENT_QUEUE_DEPTH as flanneld reads it: an integer; ≤ 0 means the default. */
export function eventQueueDepthFromEnv(env: Env = process.env): number {
  const s = env.EVENT_QUEUE_DEPTH ?? '';
  if (s === '') return DEFAULT_EVENT_QUEUE_DEPTH;
  if (!/^[+-]?\d+$/.test(s.trim())) {
    throw new WeftError('ECONFIG', `env EVENT_QUEUE_DEPTH=${s} format error: expected an integer (default ${DEFAULT_EVENT_QUEUE_DEPTH})`);
  }
  const n = Number(s.trim());
  return n > 0 ? n : DEFAULT_EVENT_QUEUE_DEPTH;
}

/** What resolveNodeName needs of the API (CoreV1Api has it). */
export interface PodReader {
  readNamespacedPod(param: { name: string; namespace: string }): Promise<V1Pod>;
}

/**
 * The node we run on: NODE_NAME, else the node of the pod
 * POD_NAMESPACE/POD_NAME (flanneld's order).
 */
export async function resolveNodeName(env: Env, api: PodReader): Promise<string> {
  const nodeName = env.NODE_NAME ?? '';
  if (nodeName !== '') return nodeName;
  const podName = env.POD_NAME ?? '';
  const podNamespace = env.POD_NAMESPACE ?? '';
  if (podName === '' || podNamespace === '') {
    throw new WeftError('ENODENAME', `cannot tell which Kubernetes node this is: ${NODE_NAME_ENV_HELP}`);
  }
  let pod: V1Pod;
  try {
    pod = await api.readNamespacedPod({ name: podName, namespace: podNamespace });
  } catch (e) {
    throw apiError(`retrieving pod spec for '${podNamespace}/${podName}' (POD_NAMESPACE/POD_NAME)`, e);
  }
  const n = pod.spec?.nodeName ?? '';
  if (n === '') {
    throw new WeftError('ENODENAME', `node name not present in pod spec '${podNamespace}/${podName}' (not scheduled yet?); ${NODE_NAME_ENV_HELP}`);
  }
  return n;
}

/** A WeftError for a failed API call, with the fix for the usual causes. */
function apiError(what: string, e: unknown): WeftError {
  if (e instanceof ApiException) {
    const code = (e as ApiException<unknown>).code;
    const msg = statusMessage((e as ApiException<unknown>).body);
    const detail = msg === '' ? `HTTP ${code}` : `HTTP ${code}: ${msg}`;
    if (code === 401) return new WeftError('EKUBEAUTH', `${what}: unauthorized (${detail}); check the service account token or the kubeconfig credentials`, { cause: e });
    if (code === 403) return new WeftError('EKUBEAUTH', `${what}: forbidden (${detail}); ${RBAC_HELP}`, { cause: e });
    if (code === 404) return new WeftError('ENOTFOUND', `${what}: not found (${detail})`, { cause: e });
    return new WeftError('EKUBEAPI', `${what}: ${detail}`, { cause: e });
  }
  return new WeftError('EKUBEAPI', `${what}: cannot reach the Kubernetes API: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

function statusMessage(body: unknown): string {
  let b = body;
  if (typeof b === 'string') {
    try {
      b = JSON.parse(b);
    } catch {
      return b as string;
    }
  }
  if (typeof b === 'object' && b !== null && typeof (b as { message?: unknown }).message === 'string') return (b as { message: string }).message;
  return '';
}

/** metav1.Time's JSON: RFC 3339, seconds, UTC. */
function goTime(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/** The node's IPv4 pod CIDR (podCIDRs first, as flanneld), masked like Go's net.ParseCIDR; null when none. */
export function nodeIpv4PodCidr(node: V1Node): Ipv4Prefix | null {
  const spec = node.spec;
  const list = spec?.podCIDRs !== undefined && spec.podCIDRs.length > 0 ? spec.podCIDRs : spec?.podCIDR ? [spec.podCIDR] : [];
  for (const c of list) {
    if (c.includes(':')) continue; // IPv6
    try {
      return parseIpv4Prefix(c);
    } catch {
      return null;
    }
  }
  return null;
}

function samePrefix(a: Ipv4Prefix | null, b: Ipv4Prefix): boolean {
  return a !== null && a.addr === b.addr && a.len === b.len;
}

// ---- the store ---------------------------------------------------------------

export interface KubeLeaseStoreOptions {
  /** --kubeconfig-file ('' = in-cluster). */
  kubeconfigFile?: string;
  /** --kube-api-url ('' = from the config). */
  apiUrl?: string;
  /** Our node (see resolveNodeName). */
  nodeName: string;
  /** --kube-annotation-prefix, e.g. flannel.alpha.coreos.com. */
  annotationPrefix: string;
  /** --net-config-path (the kube-flannel-cfg ConfigMap's net-conf.json). */
  netConfPath: string;
  /** EVENT_QUEUE_DEPTH; default 5000. */
  eventQueueDepth?: number;
  /** Full re-list period of watch(); default 5 min. */
  resyncMs?: number;
  /** --set-node-network-unavailable; default true. */
  setNodeNetworkUnavailable?: boolean;
  /** First retry delay after a failed list/watch; default 500 ms (doubles to 30 s). */
  retryMs?: number;
  /** A ready client config (else built from kubeconfigFile/apiUrl). */
  kubeConfig?: KubeConfig;
}

/** One peer as last seen: its lease and the annotation text flanneld compares. */
interface PeerEntry {
  lease: Lease;
  sig: string;
}

export class KubeLeaseStore implements LeaseStore {
  readonly nodeName: string;
  readonly netConfPath: string;
  readonly configSource: string;
  errors = 0;
  readonly annotations: KubeAnnotations;
  readonly eventQueueDepth: number;
  readonly resyncMs: number;
  readonly retryMs: number;
  readonly setNodeNetworkUnavailable: boolean;
  readonly kubeConfig: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly stops = new Set<() => void>();

  /**
   * Config from flags and env as flanneld does: NODE_NAME / POD_NAME +
   * POD_NAMESPACE for the node, EVENT_QUEUE_DEPTH for the queue.
   */
  static async fromEnv(
    opts: Omit<KubeLeaseStoreOptions, 'nodeName' | 'kubeConfig'> & { nodeName?: string },
    env: Env = process.env,
  ): Promise<KubeLeaseStore> {
    const kc = loadKubeConfig(opts, env);
    const nodeName = opts.nodeName ?? (await resolveNodeName(env, kc.makeApiClient(CoreV1Api)));
    return new KubeLeaseStore({ ...opts, nodeName, kubeConfig: kc, eventQueueDepth: opts.eventQueueDepth ?? eventQueueDepthFromEnv(env) });
  }

  constructor(opts: KubeLeaseStoreOptions) {
    if (opts.nodeName === '') throw new WeftError('ENODENAME', `empty node name: ${NODE_NAME_ENV_HELP}`);
    this.nodeName = opts.nodeName;
    this.netConfPath = opts.netConfPath;
    this.configSource = opts.netConfPath;
    this.annotations = kubeAnnotations(opts.annotationPrefix);
    this.eventQueueDepth = opts.eventQueueDepth !== undefined && opts.eventQueueDepth > 0 ? opts.eventQueueDepth : DEFAULT_EVENT_QUEUE_DEPTH;
    this.resyncMs = opts.resyncMs ?? DEFAULT_RESYNC_MS;
    this.retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
    this.setNodeNetworkUnavailable = opts.setNodeNetworkUnavailable ?? true;
    const src: KubeConfigSource = {};
    if (opts.kubeconfigFile !== undefined) src.kubeconfigFile = opts.kubeconfigFile;
    if (opts.apiUrl !== undefined) src.apiUrl = opts.apiUrl;
    this.kubeConfig = opts.kubeConfig ?? loadKubeConfig(src);
    this.core = this.kubeConfig.makeApiClient(CoreV1Api);
  }

  /** The API server in use (for messages). */
  get server(): string {
    return this.kubeConfig.getCurrentCluster()?.server ?? '?';
  }

  async getNetworkConfig(): Promise<string> {
    return readNetConfText(this.netConfPath, true);
  }


  /** <prefix>/node-public-ip of our node (flanneld uses it as --public-ip); null when unset. */
  async getStoredPublicIp(): Promise<number | null> {
    const node = await this.readOwnNode();
    const text = node.metadata?.annotations?.[this.annotations.backendNodePublicIp] ?? '';
    if (text === '') return null;
    const ip = tryParseIpv4(text);
    if (ip < 0) {
      throw new WeftError('EPUBLICIP', `annotation ${this.annotations.backendNodePublicIp}="${text}" on node ${this.nodeName} is not an IPv4 address; fix or remove it (kubectl annotate node ${this.nodeName} ${this.annotations.backendNodePublicIp}-)`);
    }
    return ip;
  }

  async acquire(conf: LeaseNetConf, opts: AcquireOptions): Promise<Lease> {
    const a = this.annotations;
    const node = await this.readOwnNode();
    const net = formatIpv4Prefix(conf.network);
    const cidr = nodeIpv4PodCidr(node);
    if (cidr === null) {
      const any = [...(node.spec?.podCIDRs ?? []), node.spec?.podCIDR ?? ''].filter((c) => c !== '');
      const extra = any.length > 0 ? ` (it has ${any.join(', ')}, but no valid IPv4 one)` : '';
      throw new WeftError(
        'ENOPODCIDR',
        `node ${JSON.stringify(this.nodeName)} pod cidr not assigned${extra}: start kube-controller-manager with --allocate-node-cidrs=true --cluster-cidr=${net}, or kubeadm init --pod-network-cidr=${net}`,
      );
    }
    // flanneld's containsCIDR: the Network's prefix is no longer and holds the podCIDR's address.
    if (!(conf.network.len <= cidr.len && prefixContains(conf.network, cidr.addr))) {
      throw new WeftError(
        'EPODCIDR',
        `podCIDR ${formatIpv4Prefix(cidr)} of node ${this.nodeName} is outside Network ${net} of ${this.netConfPath}: make Network in the net-conf and kube-controller-manager's --cluster-cidr (kubeadm --pod-network-cidr) the same range`,
      );
    }

    const ann = node.metadata?.annotations ?? {};
    const attrs = opts.attrs;
    const ipText = formatIpv4(attrs.publicIp);
    const backendType = attrs.backendType ?? '';
    // Go: json.RawMessage(nil).MarshalJSON() is "null".
    const bd = attrs.backendData === undefined ? 'null' : goJson(attrs.backendData);
    const overwrite = ann[a.backendPublicIpOverwrite] ?? '';
    let publicIp = attrs.publicIp;
    if (overwrite !== '') {
      publicIp = tryParseIpv4(overwrite);
      if (publicIp < 0) {
        throw new WeftError('EPUBLICIP', `annotation ${a.backendPublicIpOverwrite}="${overwrite}" on node ${this.nodeName} is not an IPv4 address; fix or remove it (kubectl annotate node ${this.nodeName} ${a.backendPublicIpOverwrite}-)`);
      }
    }

    // flanneld's AcquireLease, decision for decision.
    if (
      ann[a.backendData] !== bd ||
      ann[a.backendType] !== backendType ||
      ann[a.backendPublicIp] !== ipText ||
      ann[a.subnetKubeManaged] !== 'true' ||
      (overwrite !== '' && overwrite !== ipText)
    ) {
      const next: Record<string, string> = { ...ann };
      next[a.backendType] = backendType;
      if ((backendType === 'vxlan' && bd !== 'null') || (backendType === 'wireguard' && bd !== 'null') || backendType !== 'vxlan') {
        next[a.backendData] = bd;
        if (overwrite !== '') {
          if (ann[a.backendPublicIp] !== overwrite) next[a.backendPublicIp] = overwrite;
        } else {
          next[a.backendPublicIp] = ipText;
        }
      }
      next[a.subnetKubeManaged] = 'true';
      // CreateTwoWayMergePatch: only changed keys, in encoding/json's sorted map order.
      const changed: Record<string, string> = {};
      for (const k of Object.keys(next).sort()) if (next[k] !== ann[k]) changed[k] = next[k] as string;
      // flanneld would send "{}" here (overwrite already published); an empty patch changes nothing, so we skip it.
      if (Object.keys(changed).length > 0) await this.patchStatus({ metadata: { annotations: changed } }, 'publishing the lease annotations');
    }

    const leaseAttrs: LeaseAttrs = { ...attrs, publicIp };
    if (this.setNodeNetworkUnavailable) await this.completeLease();
    return { subnet: cidr, attrs: leaseAttrs, expiration: KUBE_LEASE_EXPIRATION };
  }

  /**
   * flanneld's CompleteLease: NetworkUnavailable=False. acquire() calls it
   * unless setNodeNetworkUnavailable is false.
   */
  async completeLease(): Promise<void> {
    const now = goTime(new Date());
    await this.patchStatus(
      {
        status: {
          conditions: [
            {
              type: 'NetworkUnavailable',
              status: 'False',
              lastHeartbeatTime: now,
              lastTransitionTime: now,
              reason: 'FlannelIsUp',
              message: 'Flannel is running on this node',
            },
          ],
        },
      },
      'setting the NetworkUnavailable condition',
    );
  }

  /** Kubernetes leases do not expire: nothing to do. */
  async renew(lease: Lease): Promise<Lease> {
    return lease;
  }

  watch(own: Lease, onEvents: (events: PeerEvent[]) => void, onRevoked: () => void): () => void {
    const w = new NodeWatch(this, this.core, own, onEvents, onRevoked);
    const stop = (): void => {
      w.stop();
      this.stops.delete(stop);
    };
    w.onStopped = () => this.stops.delete(stop);
    this.stops.add(stop);
    w.start();
    return stop;
  }

  /** flanneld leaves its annotations in place; so do we. */
  async release(_lease: Lease): Promise<void> {}

  async close(): Promise<void> {
    for (const stop of [...this.stops]) stop();
  }

  /** A node's lease, or null when it is not a flannel-managed node with an IPv4 podCIDR and a public IP. */
  nodeToPeer(node: V1Node): PeerEntry | null {
    const a = this.annotations;
    const ann = node.metadata?.annotations ?? {};
    if (ann[a.subnetKubeManaged] !== 'true') return null;
    const subnet = nodeIpv4PodCidr(node);
    if (subnet === null) return null;
    const ipText = ann[a.backendPublicIp] ?? '';
    const publicIp = tryParseIpv4(ipText);
    if (publicIp < 0) return null;
    const bt = ann[a.backendType] ?? '';
    const bd = ann[a.backendData] ?? '';
    const v6 = ann[a.backendPublicIpv6] ?? '';
    const attrs: LeaseAttrs = { publicIp, publicIpv6: v6 === '' ? null : v6 };
    if (bt !== '') attrs.backendType = bt;
    if (bd !== '') {
      try {
        attrs.backendData = JSON.parse(bd) as unknown;
      } catch {
        // Kept as text, as flanneld keeps the raw annotation: a backend that
        // needs the data says what is wrong with it; host-gw does not read it.
        attrs.backendData = bd;
      }
    }
    // flanneld's handleUpdateLeaseEvent compares exactly these three texts.
    return { lease: { subnet, attrs, expiration: KUBE_LEASE_EXPIRATION }, sig: `${ipText}\n${bt}\n${bd}` };
  }

  private async readOwnNode(): Promise<V1Node> {
    try {
      return await this.core.readNode({ name: this.nodeName });
    } catch (e) {
      const err = apiError(`reading node ${this.nodeName} from ${this.server}`, e);
      if (err.code === 'ENOTFOUND') {
        throw new WeftError('ENONODE', `node ${this.nodeName} not found at ${this.server}: NODE_NAME (or the pod's spec.nodeName) must be the node's registered name (kubectl get nodes)`, { cause: e });
      }
      throw err;
    }
  }

  private async patchStatus(body: object, what: string): Promise<void> {
    try {
      // The generated client would pick application/json-patch+json; flanneld sends a strategic-merge patch.
      await this.core.patchNodeStatus({ name: this.nodeName, body }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    } catch (e) {
      throw apiError(`${what} on node ${this.nodeName} (PATCH nodes/${this.nodeName}/status)`, e);
    }
  }
}

// ---- the node watch ----------------------------------------------------------

interface QueuedEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  node: V1Node;
}

/** One connection attempt: abortable before and after its response arrives. */
interface WatchConn {
  ctrl: AbortController | null;
  dead: boolean;
}

/**
 * List, then watch from the list's resourceVersion; events queue (at most
 * eventQueueDepth) and are delivered in one batch per I/O turn. Every
 * recovery — 410 Gone, a broken watch (after a backoff), a queue overflow,
 * the periodic resync — is the same: drop the watch, list again and diff
 * the listing against what was delivered, so no event is lost or repeated.
 */
class NodeWatch {
  onStopped: () => void = () => {};
  private known = new Map<string, PeerEntry>();
  private first = true;
  private stopped = false;
  /** Bumped by every relist; stale async results compare and bail. */
  private gen = 0;
  private rv = '';
  private queue: QueuedEvent[] = [];
  private drainPending = false;
  private conn: WatchConn | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly backoff: Backoff;
  private readonly watcher: Watch;

  constructor(
    private readonly store: KubeLeaseStore,
    private readonly core: CoreV1Api,
    private readonly own: Lease,
    private readonly onEvents: (events: PeerEvent[]) => void,
    private readonly onRevoked: () => void,
  ) {
    this.backoff = new Backoff(store.retryMs, RETRY_MAX_MS);
    this.watcher = new Watch(store.kubeConfig);
  }

  start(): void {
    this.resyncTimer = setInterval(() => void this.relist(), this.store.resyncMs);
    this.resyncTimer.unref();
    void this.relist();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.gen++;
    this.dropWatch();
    this.queue = [];
    if (this.resyncTimer !== null) clearInterval(this.resyncTimer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.onStopped();
  }

  private dropWatch(): void {
    const c = this.conn;
    this.conn = null;
    if (c === null) return;
    c.dead = true;
    c.ctrl?.abort();
  }

  private retryLater(): void {
    if (this.stopped) return;
    this.store.errors++;
    this.gen++; // whatever is in flight is stale now
    this.dropWatch();
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    const wait = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.relist();
    }, wait);
    this.retryTimer.unref();
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    const gen = ++this.gen;
    this.dropWatch();
    // The listing supersedes whatever the old watch queued.
    this.queue = [];
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    let items: V1Node[];
    let rv: string;
    try {
      const list = await this.core.listNode();
      items = list.items;
      rv = list.metadata?.resourceVersion ?? '';
    } catch {
      if (gen === this.gen) this.retryLater();
      return;
    }
    if (gen !== this.gen || this.stopped) return;
    const ownName = this.store.nodeName;
    const next = new Map<string, PeerEntry>();
    let ownNode: V1Node | null = null;
    for (const node of items) {
      const name = node.metadata?.name ?? '';
      if (name === ownName) {
        ownNode = node;
        continue;
      }
      const e = this.store.nodeToPeer(node);
      if (e !== null) next.set(name, e);
    }
    if (ownNode === null || !samePrefix(nodeIpv4PodCidr(ownNode), this.own.subnet)) {
      this.revoke();
      return;
    }
    const events: PeerEvent[] = [];
    for (const [name, e] of next) this.diff(this.known.get(name), e, events);
    for (const [name, old] of this.known) if (!next.has(name)) events.push({ type: 'removed', lease: old.lease });
    this.known = next;
    this.rv = rv;
    // Watch before calling out, so a throwing callback does not end the watch.
    this.startWatch(gen);
    this.deliver(events);
  }

  private startWatch(gen: number): void {
    const conn: WatchConn = { ctrl: null, dead: false };
    this.conn = conn;
    const started = Date.now();
    let events = 0;
    const live = (): boolean => !conn.dead && gen === this.gen && !this.stopped;
    const onEvent = (type: string, obj: unknown): void => {
      if (!live()) return;
      events++;
      this.backoff.reset(); // the API answers: start over from a short delay next time
      this.onWatchEvent(type, obj as V1Node);
    };
    const onDone = (err: unknown): void => {
      if (!live()) return;
      conn.dead = true;
      if (this.conn === conn) this.conn = null;
      if ((err as { statusCode?: number } | null)?.statusCode === 410) {
        void this.relist();
      } else if ((err === null || err === undefined) && (events > 0 || Date.now() - started >= MIN_HEALTHY_WATCH_MS)) {
        // The server ended the watch (its request timeout): resume from the
        // last resourceVersion seen; a 410 on resume leads to a relist.
        this.startWatch(gen);
      } else {
        this.retryLater();
      }
    };
    this.watcher
      .watch('/api/v1/nodes', { resourceVersion: this.rv, allowWatchBookmarks: true }, onEvent, onDone)
      .then(
        (ctrl) => {
          conn.ctrl = ctrl;
          if (conn.dead) ctrl.abort();
        },
        (err: unknown) => onDone(err ?? new Error('watch failed')),
      );
  }

  private onWatchEvent(type: string, obj: V1Node): void {
    const rv = obj?.metadata?.resourceVersion;
    switch (type) {
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED':
        if (rv !== undefined && rv !== '') this.rv = rv;
        this.queue.push({ type, node: obj });
        if (this.queue.length > this.store.eventQueueDepth) {
          // The consumer fell behind by more than EVENT_QUEUE_DEPTH events;
          // a fresh listing catches up in one diff instead.
          void this.relist();
          return;
        }
        if (!this.drainPending) {
          this.drainPending = true;
          setImmediate(() => this.drain());
        }
        return;
      case 'BOOKMARK':
        if (rv !== undefined && rv !== '') this.rv = rv;
        return;
      case 'ERROR': {
        const code = (obj as unknown as { code?: number } | null)?.code;
        // 410 Gone: our resourceVersion fell out of the server's window.
        if (code === 410) void this.relist();
        else this.retryLater();
        return;
      }
      default:
        return;
    }
  }

  private drain(): void {
    this.drainPending = false;
    if (this.stopped || this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    const ownName = this.store.nodeName;
    const events: PeerEvent[] = [];
    for (const { type, node } of batch) {
      const name = node.metadata?.name ?? '';
      if (name === ownName) {
        if (type === 'DELETED' || !samePrefix(nodeIpv4PodCidr(node), this.own.subnet)) {
          this.revoke();
          return;
        }
        continue;
      }
      const old = this.known.get(name);
      const e = type === 'DELETED' ? null : this.store.nodeToPeer(node);
      if (e === null) {
        if (old !== undefined) {
          this.known.delete(name);
          events.push({ type: 'removed', lease: old.lease });
        }
        continue;
      }
      this.diff(old, e, events);
      this.known.set(name, e);
    }
    this.deliver(events);
  }

  /** Events turning `old` (as delivered) into `e`. */
  private diff(old: PeerEntry | undefined, e: PeerEntry, events: PeerEvent[]): void {
    if (old === undefined) {
      events.push({ type: 'added', lease: e.lease });
    } else if (old.lease.subnet.addr !== e.lease.subnet.addr || old.lease.subnet.len !== e.lease.subnet.len) {
      // Consumers key peers by subnet: a moved podCIDR is one gone and one new.
      events.push({ type: 'removed', lease: old.lease });
      events.push({ type: 'added', lease: e.lease });
    } else if (old.sig !== e.sig) {
      events.push({ type: 'changed', lease: e.lease });
    }
  }

  private deliver(events: PeerEvent[]): void {
    if (!this.first && events.length === 0) return;
    this.first = false;
    this.onEvents(events);
  }

  private revoke(): void {
    this.stop();
    this.onRevoked();
  }
}
